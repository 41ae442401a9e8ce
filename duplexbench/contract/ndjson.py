"""Chunked NDJSON framing: one envelope per line; a blank line is a heartbeat."""

from __future__ import annotations

__all__ = ["HEARTBEAT", "NDJSONParser", "encode_line"]

HEARTBEAT = b"\n"


def encode_line(encoded_envelope: bytes) -> bytes:
    return encoded_envelope + b"\n"


class NDJSONParser:
    """Incremental: feed body bytes as they arrive, get complete lines back."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data
        *lines, self._buffer = buffer.split(b"\n")
        return [line for line in lines if line.strip()]
