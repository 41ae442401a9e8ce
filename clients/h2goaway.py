"""Graceful GOAWAY for the HTTP/2 client: GOAWAY frames taken out of the server's bytes.

Why: RFC 9113 6.8 lets streams up to a GOAWAY's last stream id run to their end,
which is how servers stop gracefully (the Node reference and nginx send GOAWAY,
then the last events and Close frames of their open streams). The ``h2``
library (4.x) does not: its state machine closes the connection on GOAWAY and
rejects every later frame, so a client feeding it everything would lose
exactly what the server flushed. :class:`GoawayHold` walks the 9-byte frame
headers (RFC 9113 4.1) of what the server sends, passes every other frame
through unchanged and keeps each GOAWAY's (last stream id, error code) for
the connection (clients.h2conn) to act on. Property-tested over arbitrary
read splits (tests/clients/test_clients_h2goaway.py).
"""

from __future__ import annotations

__all__ = ["GOAWAY", "GoawayHold"]

GOAWAY = 0x7


class GoawayHold:
    """Pass the server's frames through, minus GOAWAY frames, which are collected in
    ``goaways`` as (last_stream_id, error_code); frames may span reads."""

    __slots__ = ("goaways", "_head", "_left", "_body", "_body_len")

    def __init__(self) -> None:
        self.goaways: list[tuple[int, int]] = []
        self._head = b""  # a frame header read in part
        self._left = 0  # payload bytes of the current (passed-through) frame still to come
        self._body: bytes | None = None  # a GOAWAY payload being collected
        self._body_len = 0

    def feed(self, data: bytes) -> bytes:
        out = []
        pos, n = 0, len(data)
        while pos < n:
            if self._left:  # the payload of a frame that goes through
                take = min(self._left, n - pos)
                out.append(data[pos:pos + take])
                pos += take
                self._left -= take
                continue
            if self._body is not None:  # a GOAWAY's payload: kept back
                take = min(self._body_len - len(self._body), n - pos)
                self._body += data[pos:pos + take]
                pos += take
                if len(self._body) == self._body_len:
                    body, self._body = self._body, None
                    self.goaways.append((int.from_bytes(body[0:4], "big") & 0x7FFFFFFF,
                                         int.from_bytes(body[4:8], "big")))
                continue
            take = min(9 - len(self._head), n - pos)
            self._head += data[pos:pos + take]
            pos += take
            if len(self._head) < 9:
                break  # completed by the next read
            head, self._head = self._head, b""
            length = int.from_bytes(head[0:3], "big")
            if head[3] == GOAWAY and length >= 8:
                self._body, self._body_len = b"", length
            else:  # (a malformed GOAWAY goes through: h2 answers FRAME_SIZE_ERROR)
                out.append(head)
                self._left = length
        return b"".join(out)
