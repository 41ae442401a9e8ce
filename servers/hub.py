"""The message hub every transport shares: topics, sequence numbers, retention, fan-out.

Rules of this module:

- A message is encoded ONCE, at publish (``encode_envelope``, plus the injected
  pad), and framed once per kind of subscriber (:mod:`.fanout`); every
  subscriber of a kind gets the same ``bytes`` object.
- ``publish`` never awaits: it writes the frame straight into every ready
  subscriber's socket and queues it for the back-pressured ones (their own
  writer tasks drain them). A slow or dead client therefore never delays anyone
  else's delivery.
- Bursts: a subscriber whose queue passes its high-water mark makes its topic
  *congested*; publishers to that topic await :meth:`Hub.wait_room` (WebSocket:
  the read loop stops reading; POST: the 200 waits) until the queues fall below
  the low-water mark, or the ones congested longer than ``slow_grace_s`` are
  dropped as slow consumers. So a burst is absorbed, a stuck client dropped.
- Each topic retains its last ``retention`` messages (and at most
  ``retention_bytes``) so a client can resume from its cursor; a cursor older
  than that is reported (:class:`CursorGone`), never silently skipped.
- The hub has an epoch (new at every start); a cursor of another epoch is
  answered with a reset (:meth:`Hub.position`), never served as this one's.
- Subscribing hands over the retained backlog and registers the subscriber in
  one synchronous step, so no message is missed or duplicated.
"""

from __future__ import annotations

import asyncio
import math
import time

from duplexbench.contract import Cursor, encode_envelope, encode_reset, new_epoch
from duplexbench.contract.longpoll import encode_batch
from duplexbench.contract.ndjson import HEARTBEAT as NDJSON_HEARTBEAT
from duplexbench.contract.sse import HEARTBEAT as SSE_HEARTBEAT

from .fanout import KIND_LABELS, WEBSOCKET, Sink, SinkState, burn, chunk, frame_for
from .metrics import Metrics
from .retention import CursorAhead, CursorGone, HubError, Message, Ring, TooManyTopics

__all__ = [
    "CursorAhead",
    "CursorGone",
    "Hub",
    "HubError",
    "Message",
    "POLL_TIMEOUT_GRAIN_S",
    "Sink",
    "SinkState",
    "TooManyTopics",
]

#: Heartbeat bytes on the wire per sink kind (WebSocket uses pings instead; TCP is NDJSON's).
_HEARTBEATS = (b"", chunk(SSE_HEARTBEAT), SSE_HEARTBEAT, chunk(NDJSON_HEARTBEAT), NDJSON_HEARTBEAT,
               NDJSON_HEARTBEAT)
_HEARTBEAT_COUNTED = (0, len(SSE_HEARTBEAT), len(SSE_HEARTBEAT), 1, 1, 1)
#: Distinct (cursor, max) poll answers cached per topic between two publishes.
_BATCH_CACHE = 64
#: Held polls time out in buckets of this many seconds (rounded up): one timer per
#: bucket instead of a timer handle created and cancelled per poll (profiled: 3 % of the
#: server's CPU at 10,000 long-polling subscribers). A 204 comes at most this much late.
POLL_TIMEOUT_GRAIN_S = 0.02


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class TopicState:
    __slots__ = ("name", "ring", "sinks", "waiters", "congested", "room", "batches")

    def __init__(self, name: str, retention: int, retention_bytes: int) -> None:
        self.name = name
        self.ring = Ring(retention, retention_bytes)
        #: Subscribers by kind (dicts: ordered, O(1) removal).
        self.sinks: tuple[dict[Sink, None], ...] = tuple({} for _ in KIND_LABELS)
        #: Held long polls: woken (all at once) by the next publish.
        self.waiters: set[asyncio.Future] = set()
        #: Sinks above their high-water mark, and the publishers waiting for them.
        self.congested: set[Sink] = set()
        self.room: set[asyncio.Future] = set()
        #: (cursor, max) -> encoded poll answer, valid until the next publish.
        self.batches: dict[tuple[int, int], tuple[bytes, int]] = {}

    def idle(self) -> bool:
        return self.ring.last == 0 and not self.waiters and not any(self.sinks)


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
        slow_grace_s: float = 2.0,
        delay_s: float = 0.0,
        heartbeat_s: float = 15.0,
        cpu_us: int = 0,
    ) -> None:
        self.metrics = metrics
        self._topics: dict[str, TopicState] = {}
        self._retention = retention
        self._retention_bytes = retention_bytes
        self._max_topics = max_topics
        self.queue_limit = queue_limit
        self.slow_grace_s = slow_grace_s
        #: DUPLEXBENCH_INJECT_DELAY_MS: every delivery goes through the paced queue.
        self.delay_s = delay_s
        #: DUPLEXBENCH_INJECT_CPU_US: CPU busy-waited per delivered message (fanout.burn).
        self.cpu_ns = cpu_us * 1000
        self.heartbeat_s = heartbeat_s
        #: Replaces the envelope's closing brace: grows it by exactly pad_bytes.
        self._pad_tail = (b',"pad":"' + b"x" * (pad_bytes - 9) + b'"}') if pad_bytes else b""
        self.closing = False
        #: This instance's epoch: cursors are ``epoch-seq``.
        self.epoch = epoch or new_epoch()
        self._epoch_bytes = self.epoch.encode()
        #: Loop time of the last publish or tick: when a sink last got a write.
        self.clock = 0.0
        self._streams: set[Sink] = set()
        self._ticker: asyncio.Task | None = None
        #: The running loop, cached by start(): asyncio.get_running_loop() costs a
        #: getpid() system call per call on Python 3.11 (2.5 % of CPU, once per poll).
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Held polls by timeout bucket (see POLL_TIMEOUT_GRAIN_S).
        self._timeouts: dict[int, set[asyncio.Future]] = {}

    def reserve(self, name: str) -> None:
        """Create the topic now (TooManyTopics -> 503 before a 200 / 101 is sent)."""
        self._topic(name)

    def _topic(self, name: str) -> TopicState:
        topic = self._topics.get(name)
        if topic is None:
            if len(self._topics) >= self._max_topics:
                raise TooManyTopics(f"the server holds its maximum of {self._max_topics} topics")
            topic = self._topics[name] = TopicState(name, self._retention, self._retention_bytes)
        return topic

    # -- publishing --

    #: False: publish() is the hub; True (servers/broker.py): publishes go through a broker
    #: (``await publish_remote``) and requests ``await prepare`` before reading the cache.
    remote = False

    def publish(self, topic_name: str, data: str, ts: int | None = None) -> int:
        """Assign the next seq, retain, fan out; returns the seq. Never awaits."""
        topic = self._topic(topic_name)
        seq = topic.ring.last + 1
        body = encode_envelope(seq, topic_name, time.time_ns() if ts is None else ts, data)
        if self._pad_tail:
            body = body[:-1] + self._pad_tail
        self.metrics.published += 1
        self._deliver(topic, seq, body)
        return seq

    def _deliver(self, topic: TopicState, seq: int, body: bytes) -> None:
        """Retain message ``seq`` (the topic's next) and fan it out. Never awaits."""
        now = asyncio.get_running_loop().time()
        topic.ring.append(Message(seq, body, now))
        metrics = self.metrics
        if topic.batches:
            topic.batches.clear()
        # One clock read per publish (not per delivery): when each sink last got a write.
        self.clock = now
        paced, clock, epoch, cpu_ns = self.delay_s > 0, now, self._epoch_bytes, self.cpu_ns
        for kind, sinks in enumerate(topic.sinks):
            if not sinks:
                continue
            wire, counted = frame_for(kind, seq, body, epoch)
            item = (wire, counted, now)
            direct = 0
            for sink in list(sinks):  # a copy: a sink may be dropped on the way
                protocol = sink.protocol
                transport = protocol.transport
                if transport is None or transport.is_closing():
                    # The client is gone (its handler will hear soon): writing on would
                    # only make asyncio count and log lost writes.
                    sink.leave(SinkState.CLOSED)
                elif paced or sink.queue or protocol._paused:
                    sink.enqueue(item)
                else:
                    if cpu_ns:
                        burn(cpu_ns)
                    transport.write(wire)
                    sink.last = clock
                    direct += 1
            if direct:
                label = KIND_LABELS[kind]
                metrics.delivered[label] += direct
                metrics.bytes_written[label] += direct * counted
        if topic.waiters:
            waiters, topic.waiters = topic.waiters, set()
            for waiter in waiters:
                _wake(waiter)

    def congested_topic(self, topic_name: str) -> bool:
        """True while a subscriber of the topic is above its high-water mark."""
        topic = self._topics.get(topic_name)
        return topic is not None and bool(topic.congested)

    async def wait_room(self, topic_name: str) -> None:
        """A publisher's pause: until no subscriber of the topic is congested.

        A sink congested for ``slow_grace_s`` is dropped (a slow consumer), so the
        wait is bounded; shutdown ends it too (the message is flushed)."""
        topic = self._topics.get(topic_name)
        if topic is None or not topic.congested:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.metrics.publisher_waits += 1
        try:
            await self._wait_room(topic, loop)
        finally:
            self.metrics.publisher_wait_seconds += loop.time() - started

    async def _wait_room(self, topic: TopicState, loop: asyncio.AbstractEventLoop) -> None:
        while topic.congested and not self.closing:
            now = loop.time()
            for sink in [s for s in topic.congested if now - s.congested_at >= self.slow_grace_s]:
                sink.leave(SinkState.OVERFLOWED)
            if not topic.congested:
                return
            due = min(s.congested_at for s in topic.congested) + self.slow_grace_s
            waiter = loop.create_future()
            topic.room.add(waiter)
            handle = loop.call_at(due, _wake, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
                topic.room.discard(waiter)

    # -- called by sinks --

    def congested(self, sink: Sink) -> None:
        topic = self._topics.get(sink.topic)
        if topic is not None and sink.state is SinkState.OPEN:
            sink.congested_at = asyncio.get_running_loop().time()
            topic.congested.add(sink)

    def relieved(self, sink: Sink) -> None:
        sink.congested_at = None
        topic = self._topics.get(sink.topic)
        if topic is None:
            return
        topic.congested.discard(sink)
        if not topic.congested and topic.room:
            for waiter in topic.room:
                _wake(waiter)

    def detach(self, sink: Sink) -> None:
        """A sink left OPEN: forget it (counting a slow-consumer drop)."""
        if sink.state is SinkState.OVERFLOWED:
            self.metrics.slow_consumer_drops[sink.label] += 1
        self.relieved(sink)
        self._streams.discard(sink)
        topic = self._topics.get(sink.topic)
        if topic is not None:
            topic.sinks[sink.kind].pop(sink, None)
            self._forget_if_idle(topic)

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

    def read_batch(self, topic_name: str, cursor: int, limit: int) -> tuple[bytes, int, float]:
        """(encoded poll answer, message count, first message's publish time); count 0 =
        nothing newer. Polls held on a topic share one encoded answer per publish."""
        topic = self._topics.get(topic_name)
        if topic is None:
            if cursor > 0:
                raise CursorAhead(cursor, 0)
            return b"", 0, 0.0
        cached = topic.batches.get((cursor, limit))
        if cached is not None:
            return cached
        batch = self.read_after(topic_name, cursor, limit)
        answer = (encode_batch([m.body for m in batch]), len(batch),
                  batch[0].published_at if batch else 0.0)
        if len(topic.batches) < _BATCH_CACHE:
            topic.batches[(cursor, limit)] = answer
        return answer

    async def wait(self, topic_name: str, timeout: float) -> None:
        """Hold until the topic's next publish, ``timeout`` or shutdown."""
        if self.closing or timeout <= 0:
            return
        topic = self._topic(topic_name)
        loop = self._loop or asyncio.get_running_loop()
        waiter = loop.create_future()
        topic.waiters.add(waiter)
        bucket = self._timeout_bucket(loop, loop.time() + timeout)
        bucket.add(waiter)
        try:
            await waiter
        finally:
            bucket.discard(waiter)
            topic.waiters.discard(waiter)
            self._forget_if_idle(topic)

    def _timeout_bucket(self, loop: asyncio.AbstractEventLoop, deadline: float) -> set:
        key = math.ceil(deadline / POLL_TIMEOUT_GRAIN_S)
        bucket = self._timeouts.get(key)
        if bucket is None:
            bucket = self._timeouts[key] = set()
            loop.call_at(key * POLL_TIMEOUT_GRAIN_S, self._expire, key)
        return bucket

    def _expire(self, key: int) -> None:
        for waiter in self._timeouts.pop(key, ()):
            _wake(waiter)

    # -- subscribing (streams, WebSocket) --

    def subscribe(self, topic_name: str, start: int | None, kind: int = WEBSOCKET,
                  protocol=None, first: bytes = b"") -> Sink:
        """Register a subscriber after seq ``start`` (None = from now on; see
        :meth:`position`): ``first`` (preamble / reset) is written, then the
        retained backlog is queued, then live messages follow."""
        existing = self._topics.get(topic_name)
        backlog: list[Message] = []
        last = existing.ring.last if existing is not None else 0
        if start is not None:
            if start > last:  # refuse a bad cursor before creating anything for it
                raise CursorAhead(start, last)
            if existing is not None and start < last:
                backlog = existing.ring.after(start, last - start)
        topic = existing if existing is not None else self._topic(topic_name)
        sink = Sink(self, kind, topic_name, protocol, self.queue_limit, len(backlog))
        sink.last = self.clock
        if first:
            sink.write_now(first)
        epoch = self._epoch_bytes
        for message in backlog:
            sink.enqueue((*frame_for(kind, message.seq, message.body, epoch), message.published_at))
        topic.sinks[kind][sink] = None
        if kind != WEBSOCKET:
            self._streams.add(sink)
        return sink

    def unsubscribe(self, sink: Sink) -> None:
        sink.leave(SinkState.CLOSED)

    def _forget_if_idle(self, topic: TopicState) -> None:
        # A topic nobody published to and nobody watches costs memory for nothing.
        if topic.idle():
            self._topics.pop(topic.name, None)

    # -- heartbeats --

    def start(self) -> None:
        """Start the heartbeat ticker (on the running loop)."""
        if self._ticker is None:
            self._loop = asyncio.get_running_loop()
            self.clock = self._loop.time()
            self._ticker = self._loop.create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(1.0, self.heartbeat_s / 4)
        written = self.metrics.bytes_written
        while True:
            await asyncio.sleep(period)
            clock = self.clock = loop.time()
            for sink in self._streams:
                # Silence = no write of any kind for heartbeat_s (queued data is a write).
                if clock - sink.last >= self.heartbeat_s and sink.ready():
                    sink.write_now(_HEARTBEATS[sink.kind])
                    sink.last = clock
                    written[sink.label] += _HEARTBEAT_COUNTED[sink.kind]

    # -- shutdown --

    def begin_shutdown(self) -> None:
        """Stop taking publishes' pauses and holds: publishers and held polls answer."""
        self.closing = True
        for topic in list(self._topics.values()):
            for waiter in topic.waiters:
                _wake(waiter)
            topic.waiters.clear()
            for waiter in topic.room:
                _wake(waiter)

    async def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until every subscriber's queue and socket
        buffer are written out: a graceful restart loses nothing acknowledged."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            pending = False
            for topic in self._topics.values():
                for sinks in topic.sinks:
                    for sink in sinks:
                        transport = sink.protocol.transport
                        if sink.queue or (transport is not None and
                                          transport.get_write_buffer_size()):
                            pending = True
                            break
                    if pending:
                        break
                if pending:
                    break
            if not pending:
                return
            await asyncio.sleep(0.02)

    def shutdown(self) -> None:
        """End every subscription (handlers end their streams / close 1001)."""
        self.closing = True
        if self._ticker is not None:
            self._ticker.cancel()
        for topic in list(self._topics.values()):
            for waiter in topic.waiters:
                _wake(waiter)
            topic.waiters.clear()
            for sinks in topic.sinks:
                for sink in list(sinks):
                    sink.leave(SinkState.CLOSED)

