"""Retention: what a topic keeps so clients can resume, and the cursor errors.

A topic keeps its last ``--retention`` messages (and at most
``--retention-bytes`` of envelopes) in a ring: message ``seq`` lives in slot
``seq % capacity``, so reading "everything after my cursor" is a slice.
"""

from __future__ import annotations

from dataclasses import dataclass

from duplexbench.contract import format_cursor

__all__ = ["CursorAhead", "CursorGone", "HubError", "Message", "Ring", "TooManyTopics", "Unavailable"]


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    body: bytes  # the encoded envelope, shared by every subscriber
    published_at: float  # loop.time() at publish: lets an injected delay be exact


class HubError(Exception):
    """A request the hub cannot serve; the message is safe to show a client."""


class CursorGone(HubError):
    """The cursor is older than the retention window (410); resume from ``cursor``."""

    def __init__(self, cursor: int, oldest_seq: int, epoch: str = "") -> None:
        super().__init__(
            f"cursor {cursor} is older than the retention window: "
            f"the oldest retained seq is {oldest_seq}"
        )
        self.oldest_seq = oldest_seq
        self.epoch = epoch
        self.cursor = format_cursor(epoch or None, oldest_seq - 1)

    def as_json(self) -> dict:
        return {"error": str(self), "epoch": self.epoch, "oldest_seq": self.oldest_seq,
                "cursor": self.cursor}


class CursorAhead(HubError):
    """The cursor names a seq the topic has not reached (400)."""

    def __init__(self, cursor: int, last_seq: int) -> None:
        super().__init__(f"cursor {cursor} is ahead of the topic's last seq {last_seq}")
        self.last_seq = last_seq


class TooManyTopics(HubError):
    """Topic names are client-chosen; their number is bounded (503)."""


class Unavailable(HubError):
    """The hub cannot answer now (its broker is unreachable or lost its data): 503."""


class Ring:
    """Retention: message ``seq`` lives in slot ``seq % capacity`` (O(1) lookups)."""

    __slots__ = ("_slots", "_capacity", "oldest", "last", "bytes", "_max_bytes")

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self._slots: list[Message | None] = [None] * capacity
        self._capacity = capacity
        self._max_bytes = max_bytes
        self.oldest = 1  # seq of the oldest retained message (last + 1 when empty)
        self.last = 0  # seq of the newest message ever published
        self.bytes = 0

    def append(self, message: Message) -> None:
        slots, cap = self._slots, self._capacity
        if self.last - self.oldest + 1 >= cap:
            self._evict()
        slots[message.seq % cap] = message
        self.last = message.seq
        self.bytes += len(message.body)
        # Keep at least the newest message, whatever its size.
        while self.bytes > self._max_bytes and self.oldest < self.last:
            self._evict()

    def restart(self, seq: int) -> None:
        """Empty the ring; the next message appended is ``seq`` (a broker's cache that
        missed messages the broker no longer has: servers/broker.py)."""
        self._slots = [None] * self._capacity
        self.oldest, self.last, self.bytes = seq, seq - 1, 0

    def _evict(self) -> None:
        index = self.oldest % self._capacity
        old = self._slots[index]
        self._slots[index] = None
        if old is not None:
            self.bytes -= len(old.body)
        self.oldest += 1

    def after(self, cursor: int, limit: int) -> list[Message]:
        """Messages with seq > cursor, oldest first, at most ``limit``."""
        first = cursor + 1
        if first > self.last:
            return []
        if first < self.oldest:
            raise CursorGone(cursor, self.oldest)
        if cursor > self.last:
            raise CursorAhead(cursor, self.last)
        end = min(self.last, cursor + limit)  # inclusive
        cap = self._capacity
        start_i, end_i = first % cap, end % cap
        if start_i <= end_i:
            return self._slots[start_i : end_i + 1]  # type: ignore[return-value]
        return self._slots[start_i:] + self._slots[: end_i + 1]  # type: ignore[operator]
