"""Server-Sent Events framing (WHATWG HTML §9.2) for the envelope.

Every stream starts with the preamble ``retry: 1000`` + ``id: E-N`` (an event
without data: it sets the EventSource's lastEventId, so a stream cut before its
first message resumes without a gap), or, after a restart, ``retry: 1000`` and
an ``event: reset`` whose ``id:`` is the new position. Then ``id: E-SEQ`` +
``data: ENVELOPE`` per message, and ``: hb`` comments as heartbeats. A client
resumes by sending the last id as ``Last-Event-ID`` (see :mod:`.cursor`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = [
    "HEARTBEAT",
    "RETRY_MS",
    "SSEEvent",
    "SSEParser",
    "encode_event",
    "encode_preamble",
    "encode_reset_event",
    "encode_retry",
]

HEARTBEAT = b": hb\n\n"
#: The reconnection delay every duplexbench stream asks for.
RETRY_MS = 1000


def encode_event(seq: int, encoded_envelope: bytes, epoch: str | None = None) -> bytes:
    """One message; its ``id:`` is the cursor ``E-SEQ`` (bare ``SEQ`` without epoch)."""
    if epoch is None:
        return b"id: %d\ndata: %s\n\n" % (seq, encoded_envelope)
    return b"id: %s-%d\ndata: %s\n\n" % (epoch.encode(), seq, encoded_envelope)


def encode_retry(milliseconds: int) -> bytes:
    return b"retry: %d\n\n" % milliseconds


def encode_preamble(epoch: str, seq: int, retry_ms: int = RETRY_MS) -> bytes:
    """``retry:`` and the stream's starting cursor, before any message."""
    return b"retry: %d\nid: %s-%d\n\n" % (retry_ms, epoch.encode(), seq)


def encode_reset_event(reset_json: bytes, epoch: str, seq: int, retry_ms: int = RETRY_MS) -> bytes:
    """A restart: ``retry:``, then ``event: reset`` whose id is the new cursor ``epoch-seq``."""
    return b"retry: %d\n\nevent: reset\nid: %s-%d\ndata: %s\n\n" % (
        retry_ms, epoch.encode(), seq, reset_json)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    id: str | None
    event: str
    data: str
    retry: int | None = None


class SSEParser:
    """Incremental event-stream parser: a line buffer plus the event being built.

    Handles LF, CRLF and CR line ends, comments, multi-line ``data``, field
    lines without a space after the colon, per the WHATWG algorithm, and UTF-8
    characters split across chunks (found by tests/contract/test_contract_fuzz.py).
    """

    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry", "_pending_cr", "last_event_id",
                 "_decoder")

    def __init__(self) -> None:
        self._buffer = ""
        # Incremental: a character split across two chunks is decoded once, whole.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        #: The last id seen, kept across events as the spec's "last event ID".
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across chunks
        self._pending_cr = text.endswith("\r")
        buffer = (self._buffer + text).replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._buffer = buffer.split("\n")
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        elif field == "event":
            self._event = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        retry, self._retry = self._retry, None
        if not self._data:
            self._event = ""
            return SSEEvent(None, "", "", retry) if retry is not None else None
        event = SSEEvent(self._id, self._event or "message", "\n".join(self._data), retry)
        self._data, self._event, self._id = [], "", None
        return event
