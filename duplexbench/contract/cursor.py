"""Epochs, cursors and the reset object: how a client resumes, across restarts too.

Every server instance has an **epoch**, a token ``[a-z0-9]{1,16}`` it picks at
start (duplexbench's servers: 8 random base32 characters). Sequence numbers
restart at 1 in a new instance, so a position is only meaningful with its
epoch: the **cursor** ``E-N`` means "I hold seq N of epoch E". The same text is
the SSE ``id:``, the ``cursor`` parameter of ``/poll``, ``/stream`` and ``/ws``
and the ``Last-Event-ID`` header. A bare ``N`` is the legacy, epoch-less form
("seq N of whatever instance answers").

A cursor from **another** epoch is never served as this instance's: the server
answers with the **reset object**
``{"event":"reset","epoch":"NEW","cursor":"NEW-K","last_seq":L}`` (K = the
oldest retained seq - 1, normally 0) and delivers what it retains after K; the
client counts what it never got as lost and continues from ``NEW-K``.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

from .envelope import ContractError, Envelope, decode_envelope

__all__ = [
    "Cursor",
    "EPOCH_HEADER",
    "EPOCH_PATTERN",
    "MAX_SEQ",
    "Reset",
    "decode_message",
    "decode_reset",
    "encode_reset",
    "format_cursor",
    "new_epoch",
    "parse_cursor",
    "parse_uint",
]

#: Every /poll, /stream and /ws (101) response carries the instance's epoch in this header.
EPOCH_HEADER = "Duplexbench-Epoch"
EPOCH_PATTERN = re.compile(r"[a-z0-9]{1,16}")
#: Sequence numbers and timestamps are below 2**63 (a signed 64-bit integer anywhere).
MAX_SEQ = 2**63 - 1
_B32 = "abcdefghijklmnopqrstuvwxyz234567"


@dataclass(frozen=True, slots=True)
class Cursor:
    """``seq`` of ``epoch``; ``epoch`` None = a legacy bare integer."""

    epoch: str | None
    seq: int

    def __str__(self) -> str:
        return format_cursor(self.epoch, self.seq)


@dataclass(frozen=True, slots=True)
class Reset:
    """The server restarted: the client now holds ``cursor`` of ``epoch``."""

    epoch: str
    cursor: str
    last_seq: int

    @property
    def seq(self) -> int:
        """K: the seq the client is now at (messages after it follow)."""
        return int(self.cursor.rpartition("-")[2])


def new_epoch() -> str:
    """8 random base32 characters: a new instance's epoch."""
    return "".join(secrets.choice(_B32) for _ in range(8))


def format_cursor(epoch: str | None, seq: int) -> str:
    return str(seq) if epoch is None else f"{epoch}-{seq}"


def parse_uint(text: str | None, name: str, limit: int = MAX_SEQ) -> int | None:
    """A decimal integer 0..limit (ASCII digits only), or None when absent."""
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > limit:
        raise ContractError(f"bad {name} {text[:40]!r}: expected an integer 0-{limit}")
    return int(text)


def parse_cursor(text: str | None, name: str = "cursor") -> Cursor | None:
    """``E-N`` or legacy ``N``; None when absent (an empty value counts as absent
    only where the caller says so: Last-Event-ID)."""
    if text is None:
        return None
    epoch, sep, seq_text = text.rpartition("-")
    if sep and not EPOCH_PATTERN.fullmatch(epoch):
        raise ContractError(
            f"bad {name} {text[:40]!r}: expected EPOCH-SEQ (epoch [a-z0-9]{{1,16}}) or SEQ"
        )
    if not seq_text.isascii() or not seq_text.isdigit() or len(seq_text) > 19 \
            or int(seq_text) > MAX_SEQ:
        raise ContractError(
            f"bad {name} {text[:40]!r}: expected EPOCH-SEQ or SEQ, SEQ an integer 0-{MAX_SEQ}"
        )
    return Cursor(epoch if sep else None, int(seq_text))


def encode_reset(epoch: str, seq: int, last_seq: int) -> bytes:
    """The reset object, compact JSON: the client is now at ``epoch-seq``."""
    return b'{"event":"reset","epoch":"%s","cursor":"%s-%d","last_seq":%d}' % (
        epoch.encode(), epoch.encode(), seq, last_seq)


def decode_reset(obj: object) -> Reset:
    """A parsed reset object (dict), or :class:`ContractError`."""
    if not isinstance(obj, dict) or obj.get("event") != "reset":
        raise ContractError("not a reset object")
    epoch, cursor, last_seq = obj.get("epoch"), obj.get("cursor"), obj.get("last_seq")
    if not (isinstance(epoch, str) and EPOCH_PATTERN.fullmatch(epoch)):
        raise ContractError("reset object has no valid epoch")
    if not isinstance(cursor, str):
        raise ContractError("reset object has no cursor")
    parsed = parse_cursor(cursor)
    if parsed is None or parsed.epoch != epoch:
        raise ContractError("reset cursor does not name the reset's epoch")
    if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
        raise ContractError("reset object last_seq must be a non-negative integer")
    return Reset(epoch, cursor, last_seq)


def decode_message(raw: bytes | str) -> Envelope | Reset:
    """One NDJSON line / WebSocket text frame: an envelope, or a reset object."""
    if (b'"event"' in raw) if isinstance(raw, bytes) else ('"event"' in raw):
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError(f"message is not JSON: {exc}") from None
        if isinstance(obj, dict) and "event" in obj:
            return decode_reset(obj)
    return decode_envelope(raw)
