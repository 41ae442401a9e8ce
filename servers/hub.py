"""The message hub every transport shares: topics, sequence numbers, retention, fan-out.

Rules of this module:

- A message is encoded ONCE, at publish (``encode_envelope``, plus the injected
  pad); every subscriber gets the same ``bytes`` object. Framing is the
  transport's business.
- ``publish`` never awaits and never touches a socket: it appends to each
  subscriber's bounded queue and wakes that connection's own writer. A slow or
  dead client therefore cannot delay anyone else.
- Each topic retains its last ``retention`` messages (and at most
  ``retention_bytes``) so a client can resume from its cursor; a cursor older
  than that is reported (:class:`CursorGone`), never silently skipped.
- The hub has an epoch (new at every start); a cursor of another epoch is
  answered with a reset (:meth:`Hub.position`), never served as this one's.
- Subscribing with a cursor hands over the retained backlog and registers the
  subscriber in one synchronous step, so no message is missed or duplicated.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from duplexbench.contract import Cursor, encode_envelope, encode_reset, format_cursor, new_epoch

from .metrics import Metrics

__all__ = [
    "CursorAhead",
    "CursorGone",
    "Hub",
    "HubError",
    "Message",
    "SubState",
    "Subscription",
    "TooManyTopics",
]


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


class _Ring:
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


class SubState(enum.Enum):
    OPEN = "open"  # receiving
    OVERFLOWED = "overflowed"  # queue limit passed: the connection must be dropped
    CLOSED = "closed"  # unsubscribed or server shutting down


class Subscription:
    """One connection's bounded outgoing queue; its writer drains it in batches.

    States: OPEN -> OVERFLOWED (hub, on a full queue) | CLOSED (unsubscribe,
    shutdown). Only OPEN accepts messages; leaving OPEN drops the queue, wakes
    the writer (``next_batch`` returns None) and calls ``on_leave`` (a transport
    uses it to deal with a writer stuck on a full socket).
    """

    __slots__ = ("topic", "state", "_queue", "_limit", "_slack", "_waiter", "on_leave")

    def __init__(self, topic: str, backlog: list[Message], limit: int) -> None:
        self.topic = topic
        self.state = SubState.OPEN
        self._queue: deque[Message] = deque(backlog)
        self._limit = limit
        #: The resume backlog (bounded by retention) does not count against the limit.
        self._slack = len(backlog)
        self._waiter: asyncio.Future | None = None
        self.on_leave: Callable[[SubState], None] | None = None

    # -- called by the hub (synchronous, never blocks) --

    def offer(self, message: Message) -> None:
        if self.state is not SubState.OPEN:
            return  # dropped or closing: the hub stops feeding it at once
        queue = self._queue
        queue.append(message)
        if len(queue) > self._limit + self._slack:
            self._leave(SubState.OVERFLOWED)
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _leave(self, state: SubState) -> None:
        if self.state is not SubState.OPEN:
            return
        self.state = state
        self._queue.clear()  # memory back at once; the client resumes from its cursor
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.on_leave is not None:
            self.on_leave(state)

    # -- called by the connection's writer --

    async def next_batch(self, timeout: float | None = None) -> list[Message] | None:
        """Everything queued; ``[]`` after ``timeout`` s idle; None once not OPEN."""
        if not self._queue and self.state is SubState.OPEN:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            handle = loop.call_later(timeout, _wake, waiter) if timeout else None
            try:
                await waiter
            finally:
                self._waiter = None
                if handle is not None:
                    handle.cancel()
        if self.state is not SubState.OPEN:
            return None
        batch, self._queue = list(self._queue), deque()
        self._slack = 0
        return batch

    def __len__(self) -> int:
        return len(self._queue)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class _Topic:
    __slots__ = ("name", "ring", "subscribers", "waiters")

    def __init__(self, name: str, retention: int, retention_bytes: int) -> None:
        self.name = name
        self.ring = _Ring(retention, retention_bytes)
        self.subscribers: set[Subscription] = set()
        #: Held long polls: woken (all at once) by the next publish.
        self.waiters: set[asyncio.Future] = set()


class Hub:
    def __init__(
        self,
        metrics: Metrics,
        *,
        retention: int = 10_000,
        retention_bytes: int = 64 * 1024 * 1024,
        max_topics: int = 100_000,
        queue_limit: int = 1000,
        pad_bytes: int = 0,
        epoch: str = "",
    ) -> None:
        self.metrics = metrics
        self._topics: dict[str, _Topic] = {}
        self._retention = retention
        self._retention_bytes = retention_bytes
        self._max_topics = max_topics
        self.queue_limit = queue_limit
        #: Replaces the envelope's closing brace: grows it by exactly pad_bytes.
        self._pad_tail = (b',"pad":"' + b"x" * (pad_bytes - 9) + b'"}') if pad_bytes else b""
        self.closing = False
        #: This instance's epoch: cursors are ``epoch-seq``.
        self.epoch = epoch or new_epoch()

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            if len(self._topics) >= self._max_topics:
                raise TooManyTopics(f"the server holds its maximum of {self._max_topics} topics")
            topic = self._topics[name] = _Topic(name, self._retention, self._retention_bytes)
        return topic

    # -- publishing --

    def publish(self, topic_name: str, data: str, ts: int | None = None) -> int:
        """Assign the next seq, retain, fan out; returns the seq. Never awaits."""
        topic = self._topic(topic_name)
        seq = topic.ring.last + 1
        body = encode_envelope(seq, topic_name, time.time_ns() if ts is None else ts, data)
        if self._pad_tail:
            body = body[:-1] + self._pad_tail
        message = Message(seq, body, asyncio.get_running_loop().time())
        topic.ring.append(message)
        self.metrics.published += 1
        for subscription in topic.subscribers:
            subscription.offer(message)
        if topic.waiters:
            waiters, topic.waiters = topic.waiters, set()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        return seq

    # -- cursors --

    def position(self, topic_name: str, cursor: Cursor | None) -> tuple[int, bytes | None]:
        """Where a client starts: (seq it holds, reset object or None).

        None = from now on; seq 0 = from the oldest retained; another epoch's
        cursor = a reset to oldest - 1 (the reset object says so); this epoch's
        (or a legacy) cursor older than retention raises CursorGone, one ahead
        of the topic CursorAhead."""
        topic = self._topics.get(topic_name)
        last, oldest = (topic.ring.last, topic.ring.oldest) if topic is not None else (0, 1)
        if cursor is None:
            return last, None
        seq = cursor.seq
        if seq == 0:
            return oldest - 1, None
        if cursor.epoch is not None and cursor.epoch != self.epoch:
            return oldest - 1, encode_reset(self.epoch, oldest - 1, last)
        if seq > last:
            raise CursorAhead(seq, last)
        if seq < oldest - 1:
            raise CursorGone(seq, oldest, self.epoch)
        return seq, None

    # -- reading (long polling) --

    def last_seq(self, topic_name: str) -> int:
        topic = self._topics.get(topic_name)
        return 0 if topic is None else topic.ring.last

    def read_after(self, topic_name: str, cursor: int, limit: int) -> list[Message]:
        """Retained messages with seq > cursor (at most ``limit``), or CursorGone/Ahead."""
        topic = self._topics.get(topic_name)
        if topic is None:
            if cursor > 0:
                raise CursorAhead(cursor, 0)
            return []
        ring = topic.ring
        if cursor > ring.last:
            raise CursorAhead(cursor, ring.last)
        return ring.after(cursor, limit)

    async def wait(self, topic_name: str, timeout: float) -> None:
        """Hold until the topic's next publish, ``timeout`` or shutdown."""
        if self.closing or timeout <= 0:
            return
        topic = self._topic(topic_name)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        topic.waiters.add(waiter)
        handle = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            topic.waiters.discard(waiter)
            self._forget_if_idle(topic)

    # -- subscribing (streams, WebSocket) --

    def subscribe(self, topic_name: str, cursor: int | None) -> Subscription:
        """Register a subscriber; with a cursor (a seq, see :meth:`position`), its
        queue starts with what it missed."""
        existing = self._topics.get(topic_name)
        backlog: list[Message] = []
        if cursor is not None:
            # Refuse a bad cursor before creating anything for it.
            last = existing.ring.last if existing is not None else 0
            if cursor > last:
                raise CursorAhead(cursor, last)
            if existing is not None:
                backlog = existing.ring.after(cursor, last - cursor)
        topic = existing if existing is not None else self._topic(topic_name)
        subscription = Subscription(topic_name, backlog, self.queue_limit)
        topic.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        topic = self._topics.get(subscription.topic)
        if topic is not None:
            topic.subscribers.discard(subscription)
            self._forget_if_idle(topic)
        subscription._leave(SubState.CLOSED)

    def _forget_if_idle(self, topic: _Topic) -> None:
        # A topic nobody published to and nobody watches costs memory for nothing.
        if topic.ring.last == 0 and not topic.subscribers and not topic.waiters:
            self._topics.pop(topic.name, None)

    # -- shutdown --

    def shutdown(self) -> None:
        """Answer every held poll and end every subscription (writers see None)."""
        self.closing = True
        for topic in list(self._topics.values()):
            for waiter in topic.waiters:
                _wake(waiter)
            topic.waiters.clear()
            for subscription in list(topic.subscribers):
                subscription._leave(SubState.CLOSED)
