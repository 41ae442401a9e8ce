"""Plain TCP framing: one line per message, the floor under every other transport.

Why it exists: WebSocket, SSE, NDJSON and long polling all add framing (and
HTTP) around the same envelope; plain TCP with the least framing that still
delimits messages is the reference they are measured against (Skvorc et al.,
MIPRO 2014: WebSocket vs plain TCP). The envelope's JSON never holds a raw
newline (``json.dumps`` escapes every control character), so ``\\n`` delimits
it unambiguously and a delivery costs exactly the envelope + 1 byte.

The conversation on one connection (every line ends with ``\\n``):

1. Client: the **subscribe line** ``{"topic":"T","cursor":"E-N"}``
   (``cursor`` optional, the ``?cursor=`` of the other transports, same
   rules; ``"subscribe":false`` makes a publish-only connection, like
   ``/ws?subscribe=0``). Unknown keys are ignored.
2. Server: the **hello line** ``{"event":"hello","epoch":"E","cursor":"E-N"}``
   (the epoch, as the ``Duplexbench-Epoch`` header says it; ``cursor`` =
   where the stream starts, as the SSE preamble's ``id:``; publish-only
   connections get no ``cursor``), or, for a cursor of another epoch, the
   **reset object** in its place (as NDJSON's first line), or an **error
   line** ``{"error":"reason","status":N,...}`` (``N`` = the HTTP status the
   other transports answer: 400, 410 with ``epoch``/``oldest_seq``/``cursor``,
   413, 503) after which the server closes the connection.
3. Server: retained messages after the cursor, then live ones, one envelope
   per line; a blank line as heartbeat after ``--heartbeat`` s of silence.
4. Client, any time after its subscribe line: **publish lines**
   ``{"data":"...","ts":NS}`` (``ts`` optional, an integer or a string of
   digits: the WebSocket publish frame) publish to the connection's topic; a
   blank line is ignored. A bad one is an error line and the end of the
   connection, as a bad WebSocket frame is a Close 1008.

A line longer than ``max_payload + LINE_OVERHEAD`` bytes (or a publish whose
``data`` is over ``max_payload`` bytes) is error 413.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .cursor import Cursor, Reset, decode_reset, parse_cursor
from .envelope import ContractError, Envelope, decode_envelope, validate_topic
from .websocket import decode_publish, encode_publish

__all__ = [
    "HEARTBEAT",
    "LINE_OVERHEAD",
    "Hello",
    "LineSplitter",
    "LineTooLong",
    "Subscribe",
    "TcpError",
    "decode_line",
    "decode_publish_line",
    "decode_subscribe",
    "encode_error",
    "encode_hello",
    "encode_line",
    "encode_publish_line",
    "encode_subscribe",
]

HEARTBEAT = b"\n"
#: A line may exceed --max-payload by this much: the JSON around the data (as WebSocket).
LINE_OVERHEAD = 256


class LineTooLong(ContractError):
    """A line over the limit (status 413): the reader stops buffering it."""


@dataclass(frozen=True, slots=True)
class Subscribe:
    """The client's first line: its topic, where it resumes, whether it receives."""

    topic: str
    cursor: Cursor | None = None
    subscribe: bool = True


@dataclass(frozen=True, slots=True)
class Hello:
    """The server's first line: its epoch and (subscribers) where the stream starts."""

    epoch: str
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class TcpError:
    """An error line: the HTTP-equivalent status, the reason and any extra fields."""

    status: int
    error: str
    extra: dict


# -- lines on the wire -----------------------------------------------------------------------


def encode_line(encoded_envelope: bytes) -> bytes:
    """One delivery: the envelope and a newline (framed once, sent to every subscriber)."""
    return encoded_envelope + b"\n"


def encode_subscribe(topic: str, cursor: str | None = None, subscribe: bool = True) -> bytes:
    obj: dict = {"topic": topic}
    if cursor is not None:
        obj["cursor"] = cursor
    if not subscribe:
        obj["subscribe"] = False
    return _compact(obj) + b"\n"


def decode_subscribe(line: bytes | str) -> Subscribe:
    """The subscribe line, or :class:`ContractError` saying what is wrong."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ContractError(f"subscribe line is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ContractError('subscribe line must be {"topic": "T", "cursor": "E-N"}')
    topic = obj.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ContractError('subscribe line needs "topic": a string of 1-64 A-Z a-z 0-9 _ . -')
    topic = validate_topic(topic)
    cursor = obj.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise ContractError('subscribe line cursor must be a string "E-N" or "N"')
    subscribe = obj.get("subscribe", True)
    if not isinstance(subscribe, bool):
        raise ContractError("subscribe line subscribe must be true or false")
    return Subscribe(topic, parse_cursor(cursor), subscribe)


def encode_hello(epoch: str, seq: int | None = None) -> bytes:
    """The server's hello line; ``seq`` None = a publish-only connection."""
    if seq is None:
        return b'{"event":"hello","epoch":"%s"}\n' % epoch.encode()
    return b'{"event":"hello","epoch":"%s","cursor":"%s-%d"}\n' % (epoch.encode(), epoch.encode(), seq)


def encode_error(status: int, reason: str, **extra) -> bytes:
    """An error line; the server closes the connection after it."""
    return _compact({"error": reason, "status": status, **extra}) + b"\n"


def encode_publish_line(data: str, ts: int | None = None) -> bytes:
    return encode_publish(data, ts).encode() + b"\n"


def decode_publish_line(line: bytes | str) -> tuple[str, int | None]:
    """(data, ts) of a publish line, or :class:`ContractError` (the WebSocket frame's rules)."""
    return decode_publish(line)


def decode_line(line: bytes | str) -> Envelope | Reset | Hello | TcpError:
    """One server line (without its newline): an envelope, the reset object, the hello
    line or an error line; :class:`ContractError` when it is none of them."""
    if (line.startswith(b"{\"seq\"") if isinstance(line, bytes) else line.startswith('{"seq"')):
        return decode_envelope(line)
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ContractError(f"line is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ContractError("line is not a JSON object")
    event = obj.get("event")
    if event == "reset":
        return decode_reset(obj)
    if event == "hello":
        epoch, cursor = obj.get("epoch"), obj.get("cursor")
        if not isinstance(epoch, str) or not (cursor is None or isinstance(cursor, str)):
            raise ContractError("hello line needs a string epoch (and cursor)")
        return Hello(epoch, cursor)
    if "error" in obj:
        status = obj.get("status")
        if not isinstance(status, int) or not isinstance(obj["error"], str):
            raise ContractError('error line must be {"error": "reason", "status": N}')
        extra = {k: v for k, v in obj.items() if k not in ("error", "status")}
        return TcpError(status, obj["error"], extra)
    return decode_envelope(line)


class LineSplitter:
    """Incremental: feed bytes as they arrive, get complete non-blank lines back
    (without their ``\\n``). A line longer than ``limit`` bytes raises
    :class:`LineTooLong` (status 413) as soon as it is known to be too long,
    so a peer cannot make the reader buffer without bound."""

    __slots__ = ("_buffer", "_limit")

    def __init__(self, limit: int) -> None:
        self._buffer = b""
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        *lines, rest = buffer.split(b"\n")
        self._buffer = rest
        limit = self._limit
        if len(rest) > limit or any(len(line) > limit for line in lines):
            raise LineTooLong(f"line exceeds {limit} bytes")
        return [line for line in lines if line.strip()]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete line held."""
        return len(self._buffer)


def _compact(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
