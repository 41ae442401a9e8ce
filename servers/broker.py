"""The broker hub: a worker's hub whose topics live in Redis, shared by every worker.

Why: one server process is one core. Past it, deployments run several
workers that fan out through a broker (Redis behind Socket.IO's adapter and
Centrifugo). Here each worker (servers/workers.py) keeps the in-memory hub's
fan-out path (frame once per transport, write straight to ready sockets,
queue only while back-pressured) and changes where messages come from:

- **Publishing** (``await publish_remote``) is one Lua script in Redis
  (servers/broker_store.py): INCR the topic's seq, XADD the envelope with ID
  ``0-<seq>``, MAXLEN = ``--retention``. The 200 / the next WebSocket frame
  waits for it, so an acknowledged message is in the broker.
- **Delivering**: each worker follows the topics it has clients for with one
  reader connection (``XREAD BLOCK`` over all of them, re-issued when the set
  changes: a new topic ends the blocked read with CLIENT UNBLOCK) and feeds
  what it reads through the ordinary fan-out (:meth:`Hub._deliver`), in seq
  order, each message once.
- **The cache**: a followed topic's ring holds what Redis retains (loaded
  whole when the topic is first followed, then kept in step by the reader),
  so long polls, resumes and cursor checks are answered locally. A request
  whose cursor is ahead of the cache, or has none ("from now on"), first
  catches the cache up with Redis (:meth:`prepare`, one round trip), so a
  cursor issued by any worker is valid on every worker (read-your-writes
  across workers). Topics nobody asked for in ``UNFOLLOW_S`` are forgotten.
- **The epoch** is Redis's (``duplexbench:epoch``, created once with SET NX).
  When it is gone the broker lost its data: the worker stops gracefully
  (exit status :data:`EXIT_EPOCH_LOST`; the parent starts a new one, which
  takes the new epoch), so clients reconnect and get the contract's reset.
- **Bursts**: the reader waits for room on congested topics before reading
  on (the burst rule across workers: Redis holds the burst, the slow
  subscriber is dropped after ``--slow-grace``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from duplexbench.contract import Cursor, encode_envelope, new_epoch

from .broker_metrics import BrokerStats
from .broker_store import Entry, RedisStore
from .fanout import SinkState
from .hub import Hub, TooManyTopics, TopicState
from .metrics import Metrics
from .retention import Unavailable

__all__ = ["BLOCK_MS", "BrokerHub", "EXIT_EPOCH_LOST", "UNFOLLOW_S"]

log = logging.getLogger("servers.broker")

#: A worker whose broker lost its data exits with this (EX_TEMPFAIL): restart me.
EXIT_EPOCH_LOST = 75
#: The reader's XREAD BLOCK: a safety net only (a new topic unblocks it at once).
BLOCK_MS = 2000
#: How often the epoch is checked (and idle topics forgotten) when nothing else asks Redis.
WATCH_S = 0.5
#: A topic with no subscriber, no held poll and no request for this long is no longer followed.
UNFOLLOW_S = 10.0
_LOST = "the broker lost its data (new epoch): this worker restarts; reconnect"


class BrokerHub(Hub):
    remote = True

    def __init__(self, metrics: Metrics, *, redis_url: str, worker: int = 0, workers: int = 1,
                 **hub_options) -> None:
        super().__init__(metrics, epoch="pending", **hub_options)
        self.store = RedisStore(redis_url)
        self.stats = BrokerStats(worker, workers)
        metrics.extra.append(self.stats.render)
        #: Set when the broker's epoch is not ours any more: serve() stops this worker.
        self.lost = asyncio.Event()
        #: Loads of topics being followed for the first time, joined by concurrent requests.
        self._loads: dict[str, asyncio.Task] = {}
        self._touched: dict[str, float] = {}
        #: Set when the followed set changed: the reader re-issues its XREAD.
        self._dirty = asyncio.Event()
        self._blocked = False
        #: Entries per stream per XREAD: a burst reaches subscriber queues in steps
        #: smaller than their limit, so the burst rule can act between them.
        self._read_count = max(1, min(1000, self.queue_limit // 2))
        self._tasks: list[asyncio.Task] = []
        self._unblocker: asyncio.Task | None = None

    # -- life cycle --

    async def connect(self) -> None:
        """Before listening: reach Redis and take its epoch (creating it if there is none)."""
        await self.store.connect()
        self.epoch = await self.store.init_epoch(new_epoch())
        self._epoch_bytes = self.epoch.encode()

    def start(self) -> None:
        super().start()
        loop = self._loop
        self._tasks = [loop.create_task(self._read_loop(), name="broker reader"),
                       loop.create_task(self._watch_loop(), name="broker watch")]

    def _stop_tasks(self) -> None:
        for task in (*self._tasks, self._unblocker):
            if task is not None:
                task.cancel()

    def begin_shutdown(self) -> None:
        self._stop_tasks()  # nothing new is read: the flush can end
        super().begin_shutdown()

    def shutdown(self) -> None:
        self._stop_tasks()
        super().shutdown()

    async def disconnect(self) -> None:
        self._stop_tasks()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()

    # -- publishing --

    def publish(self, topic_name: str, data: str, ts: int | None = None) -> int:
        raise RuntimeError("a broker hub publishes with 'await publish_remote(...)'")

    async def publish_remote(self, topic_name: str, data: str, ts: int | None = None) -> int:
        """Publish through Redis; returns the seq once Redis holds the message."""
        if self.lost.is_set():
            raise Unavailable(_LOST)
        body = encode_envelope(0, topic_name, time.time_ns() if ts is None else ts, data)
        if self._pad_tail:
            body = body[:-1] + self._pad_tail
        # '{"seq":0' is completed with the real seq by the script (broker_store.PUBLISH_LUA).
        sent = time.monotonic_ns()
        seq, current = await self.store.publish(self.epoch, topic_name, body[8:], self._retention,
                                                self._max_topics, sent)
        self.stats.publish.observe(time.monotonic_ns() - sent)
        if seq == 0:
            self._epoch_lost(current)
            raise Unavailable(_LOST)
        if seq < 0:
            raise TooManyTopics(f"the broker holds its maximum of {self._max_topics} topics")
        self.metrics.published += 1
        return seq

    # -- before reading: the cache in step with Redis --

    async def prepare(self, topic_name: str, cursor: Cursor | None) -> None:
        """Make the cache good enough to answer ``cursor`` on this topic: followed (its
        retained tail loaded), and caught up with Redis when the cursor is ahead of the
        cache or absent ("from now on" means Redis's last seq, not this worker's)."""
        if self.lost.is_set():
            raise Unavailable(_LOST)
        self._touched[topic_name] = self._loop.time()
        topic = self._topics.get(topic_name)
        if topic is None:
            load = self._loads.get(topic_name)
            if load is None:
                load = self._loads[topic_name] = self._loop.create_task(self._load(topic_name),
                                                                        name=topic_name)
                load.add_done_callback(self._load_done)
            await asyncio.shield(load)
            topic = self._topics[topic_name]
        if cursor is None or cursor.seq > topic.ring.last:
            await self._catch_up(topic_name)

    def _load_done(self, load: asyncio.Task) -> None:
        self._loads.pop(load.get_name(), None)
        if not load.cancelled():
            load.exception()  # seen by the requests that awaited it; none may be left

    async def _load(self, topic_name: str) -> None:
        epoch, entries = await self.store.sync(topic_name, 0, self._retention)
        self._check_epoch(epoch)
        topic = self._topics.get(topic_name)
        if topic is None:
            topic = self._topic(topic_name)  # TooManyTopics: 503
            self.stats.topics = len(self._topics)
            self._reader_wake()
        self._ingest(topic, entries, None)  # old messages: not a transit to measure

    async def _catch_up(self, topic_name: str) -> None:
        topic = self._topics[topic_name]
        epoch, entries = await self.store.sync(topic_name, topic.ring.last, self._retention)
        read = (time.monotonic_ns(), time.time_ns())
        self._check_epoch(epoch)
        topic = self._topics.get(topic_name)
        if topic is not None and entries:
            self._ingest(topic, entries, read)

    def _ingest(self, topic: TopicState, entries: list[Entry],
                read: tuple[int, int] | None) -> None:
        """Deliver what was read, in seq order, each message once (both the reader and
        catch-ups read the same stream: what the cache has is skipped). ``read``: the
        (monotonic, wall-clock) ns of the read, None for a first load (old messages)."""
        ring, stats = topic.ring, self.stats
        for seq, body, sent_ns, accepted_us in entries:
            last = ring.last
            if seq <= last:
                continue
            if seq != last + 1:
                self._gap(topic, seq)
            if read is not None:
                stats.transit.observe(read[1] - accepted_us * 1000)
                stats.sent.observe(read[0] - sent_ns)
            stats.entries += 1
            self._deliver(topic, seq, body)

    def _gap(self, topic: TopicState, seq: int) -> None:
        """The cache lacks messages Redis no longer retains (a first load of a trimmed topic,
        or this worker fell more than --retention behind): start the ring at ``seq``. Any
        subscriber would miss messages: it is dropped as a slow consumer and resumes
        from its cursor (410: older than retention, as the contract says)."""
        if topic.ring.last or any(topic.sinks):
            self.stats.gaps += 1
            log.warning("topic %s: the cache fell behind the broker's retention (seq %d after %d)",
                        topic.name, seq, topic.ring.last)
        for sinks in topic.sinks:
            for sink in list(sinks):
                sink.leave(SinkState.OVERFLOWED)
        topic.ring.restart(seq)
        topic.batches.clear()

    # -- the reader --

    def _reader_wake(self) -> None:
        self._dirty.set()
        if self._blocked and (self._unblocker is None or self._unblocker.done()):
            self._unblocker = self._loop.create_task(self._unblock())

    async def _unblock(self) -> None:
        # CLIENT UNBLOCK sent before the XREAD reached Redis does nothing: repeat until the
        # reader has re-issued with the new set (it clears _dirty first).
        while self._dirty.is_set() and self._blocked and not self.closing:
            try:
                await self.store.unblock_reader()
            except Unavailable:
                return
            await asyncio.sleep(0.001)

    async def _read_loop(self) -> None:
        failures = 0
        while not self.closing:
            try:
                await self.store.reader_ready()
                for topic in [t for t in self._topics.values() if t.congested]:
                    # The burst rule across workers (not counted as a publisher's wait).
                    await self._wait_room(topic, self._loop)
                if not self._topics:
                    self._dirty.clear()
                    await self._dirty.wait()
                    continue
                self._dirty.clear()
                after = {name: topic.ring.last for name, topic in self._topics.items()}
                self._blocked = True
                try:
                    reply = await self.store.read(after, self._read_count, BLOCK_MS)
                finally:
                    self._blocked = False
                read = (time.monotonic_ns(), time.time_ns())
                if reply:
                    self.stats.reads += 1
                for name, entries in reply:
                    topic = self._topics.get(name)
                    if topic is not None:  # else forgotten meanwhile: a new load reads it
                        self._ingest(topic, entries, read)
                failures = 0
            except Unavailable as exc:
                failures += 1
                self.stats.errors += 1
                if failures == 1:
                    log.warning("%s; retrying", exc)
                await asyncio.sleep(min(1.0, 0.02 * 2 ** failures))

    # -- the epoch and idle topics --

    def _check_epoch(self, epoch: str) -> None:
        if epoch != self.epoch:
            self._epoch_lost(epoch)
            raise Unavailable(_LOST)

    def _epoch_lost(self, now: str) -> None:
        if not self.lost.is_set():
            log.warning("the broker's epoch is %r, not %r: its data was lost; restarting",
                        now or "(none)", self.epoch)
            self.lost.set()

    async def _watch_loop(self) -> None:
        while not self.closing:
            await asyncio.sleep(WATCH_S)
            try:
                self._check_epoch(await self.store.current_epoch())
            except Unavailable:
                self.stats.errors += 1
            self._forget_idle()

    def _forget_if_idle(self, topic: TopicState) -> None:
        pass  # followed topics stay cached while asked for (_forget_idle decides)

    def _forget_idle(self) -> None:
        now = self._loop.time()
        for name, touched in list(self._touched.items()):
            if now - touched < UNFOLLOW_S or name in self._loads:
                continue
            topic = self._topics.get(name)
            if topic is not None and (topic.waiters or any(topic.sinks)):
                continue
            del self._touched[name]
            if self._topics.pop(name, None) is not None:
                self._dirty.set()  # the next XREAD leaves it out
        self.stats.topics = len(self._topics)
