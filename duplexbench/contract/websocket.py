"""RFC 6455 facts used by servers, clients and tests; pure code, no sockets.

Client→server text frames are publishes: ``{"data": "...", "ts": NS}`` (``ts``
optional: a JSON integer or a string of decimal digits, 0 <= ts < 2**63, since
JavaScript numbers cannot hold nanoseconds exactly). Server→client text frames are envelopes, one per frame.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct

from .envelope import MAX_TS, ContractError

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INVALID_PAYLOAD",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_POLICY_VIOLATION",
    "GUID",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "accept_key",
    "decode_publish",
    "encode_frame",
    "encode_publish",
    "frame_header_size",
    "parse_frame",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutdown
CLOSE_INVALID_PAYLOAD = 1007  # invalid UTF-8 in a text frame
CLOSE_POLICY_VIOLATION = 1008  # a frame that is not a valid publish
CLOSE_MESSAGE_TOO_BIG = 1009


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def frame_header_size(payload_length: int, masked: bool) -> int:
    """Header bytes of one frame (RFC 6455 §5.2): 2, 4 or 10, plus 4 if masked."""
    if payload_length < 126:
        size = 2
    elif payload_length < 65536:
        size = 4
    else:
        size = 10
    return size + (4 if masked else 0)


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None, fin: bool = True) -> bytes:
    """One frame, byte for byte; ``mask`` (4 bytes) for client→server frames."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask is None:
        return header + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def parse_frame(data: bytes) -> tuple[int, bool, bytes, int] | None:
    """Parse one frame at the start of ``data``: (opcode, fin, unmasked payload,
    bytes consumed), or None when more bytes are needed."""
    if len(data) < 2:
        return None
    first, second = data[0], data[1]
    length, offset = second & 0x7F, 2
    if length == 126:
        if len(data) < 4:
            return None
        (length,) = struct.unpack_from("!H", data, 2)
        offset = 4
    elif length == 127:
        if len(data) < 10:
            return None
        (length,) = struct.unpack_from("!Q", data, 2)
        offset = 10
    mask = None
    if second & 0x80:
        if len(data) < offset + 4:
            return None
        mask, offset = data[offset : offset + 4], offset + 4
    if len(data) < offset + length:
        return None
    payload = data[offset : offset + length]
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return first & 0x0F, bool(first & 0x80), payload, offset + length


def encode_publish(data: str, ts: int | None = None) -> str:
    obj: dict = {"data": data} if ts is None else {"ts": ts, "data": data}
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def decode_publish(text: str | bytes) -> tuple[str, int | None]:
    """(data, ts) from a client's publish frame, or :class:`ContractError`."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ContractError(f"publish frame is not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), str):
        raise ContractError('publish frame must be {"data": "...", "ts": NS}')
    if ("\\u" in text) if isinstance(text, str) else (b"\\u" in text):
        # Only a \u escape can smuggle in a lone surrogate, which no UTF-8 envelope can carry.
        try:
            obj["data"].encode()
        except UnicodeEncodeError:
            raise ContractError("publish frame data holds a lone surrogate escape: not UTF-8 text") from None
    ts = obj.get("ts")
    if ts is not None:
        if isinstance(ts, str) and ts.isascii() and ts.isdigit() and len(ts) <= 19:
            ts = int(ts)
        if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts <= MAX_TS:
            raise ContractError(
                "publish frame ts must be an integer (or a string of decimal digits) 0 <= ts < 2^63"
            )
    return obj["data"], ts
