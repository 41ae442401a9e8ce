"""One load point in the event loop: connect, publish open loop, drain, count.

:class:`LoadGen` runs the point: it connects every subscriber, starts the
publisher (a process of its own, clients.pubproc, except when messages go up
the subscribers' own WebSockets), waits until all are subscribed, has the
warm-up and the measurement published at their scheduled times, drains and
leaves the results to clients.counters, which turns what it saw into
``counters.json`` and ``samples.parquet``. The process around it (signals,
exit codes) is :mod:`clients.loadgen`.

The receive path is the load generator's cost per delivered message, so it
does as little Python as it can: envelopes are found by one regular
expression per read (``accounting.ENVELOPES``), accounted in a loop that
appends to typed arrays, WebSocket frames are parsed by picows (compiled),
and bytes are not counted per read at all: the kernel counts them
(``TCP_INFO``, clients.tcpinfo), read at the window edges.

The byte window opens after the warm-up has been delivered and closes when
the drain ends, so it holds the measured messages only (see
:meth:`LoadGen._publish_all`); the drain waits for stragglers up to a bound
derived from the observed latency, and what arrives after it is ``late``,
not lost (clients.core).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .accounting import RawLog, Samples, SubscriberLog
from .base import ClientError, Subscriber
from .core import drain_bound_s, listen_s
from .plan import ROUTE_WS_SUB, Plan, make_plan
from .pubctl import PUBLISHER_SLACK_S, PublisherProcess
from .pubctl import send_due as _send_due
from .pubctl import sleep_until as _sleep_until
from .reader import FastReader, linger_ms_for, reader_enabled
from .schedule import Schedule, make_schedule
from .spec import LoadSpec
from .subscribers import SUBSCRIBERS, make_subscribers
from .tcp import discover_tcp_port
from .tcpinfo import TcpTally

__all__ = ["LoadGen", "PublisherProcess", "SUBSCRIBERS", "emit"]

#: Error messages kept in counters.json (the count covers all of them).
KEEP_ERRORS = 20
#: Error messages also sent to stdout as events (the runner shows them).
EMIT_ERRORS = 5
#: Pause after everyone subscribed: a long poll is "subscribed" once sent,
#: and the server should have registered it before the first publish.
SETTLE_S = {"longpoll": 0.2}
DEFAULT_SETTLE_S = 0.05
#: The first message is due this long after the schedule is fixed.
LEAD_NS = 50_000_000
#: Between warm-up and measurement, wait at least this long (and at least
#: SETTLE_RTTS connection round trips) for warm-up messages still in flight.
WARMUP_SETTLE_MIN_S = 1.0
SETTLE_RTTS = 4
#: How often the pause checks whether the warm-up has been delivered.
SETTLE_POLL_S = 0.001
#: After SIGTERM / SIGINT, wait at most this long for messages in flight.
STOP_DRAIN_S = 0.5
#: How long closing all clients may take before the process just exits.
CLOSE_TIMEOUT_S = 5.0
#: Reads kept raw before a subscriber's are accounted (memory bound): ~RAW_BUDGET
#: reads over all subscribers, at least RAW_LIMIT_MIN and at most RAW_LIMIT_MAX each.
RAW_BUDGET = 1_000_000
RAW_LIMIT_MIN = 64
RAW_LIMIT_MAX = 16384
#: Where an event ends on a stream (None: every read holds whole envelopes).
DELIMITERS = {"sse": b"\n\n", "ndjson": b"\n", "tcp": b"\n"}
#: How long the publisher process may take to answer beyond its schedule.



def emit(event: str, **fields) -> None:
    """One JSON line on stdout: the runner's view of this process."""
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()




class LoadGen:
    """One load point: ``await run()``, then ``write(complete, reason)`` and ``close()``."""

    def __init__(self, spec: LoadSpec, out_dir: Path, members: list[int] | None = None) -> None:
        """``members``: the subscribers (global numbers) this process runs; None = all
        (a shard of a sharded point runs ``c % procs == k``, clients.shard)."""
        self.spec = spec
        self.out_dir = out_dir
        self.plan: Plan = make_plan(spec)
        self.schedule: Schedule = make_schedule(
            spec.rate, spec.warmup_s, spec.duration_s, spec.arrival, spec.seed
        )
        n = len(self.schedule)
        self.first = self.schedule.first_measured
        self.topic_of = self.plan.topic_of(n, spec)
        self.sender_of = self.plan.sender_of(n, spec)
        self.published_ok = np.zeros(n, dtype=bool)
        self.sent_ns = np.zeros(n, dtype=np.int64)
        self.samples = Samples()
        self.members = list(range(spec.clients)) if members is None else members
        self.logs = [
            SubscriberLog(c, int(self.plan.sub_topic[c]), self.samples, self.first, n)
            for c in self.members
        ]
        #: Each subscriber's reads, kept raw in the window (accounting.RawLog).
        limit = min(RAW_LIMIT_MAX, max(RAW_LIMIT_MIN, RAW_BUDGET // max(1, len(self.members))))
        self.raws = [RawLog(log, DELIMITERS.get(spec.transport), limit) for log in self.logs]
        self.subscribers: list[Subscriber] = []
        #: The receive loop live subscriptions are read by (clients/reader.py); None when
        #: the transports read through asyncio (DUPLEXBENCH_LOADGEN_READER=0).
        self.reader: FastReader | None = None
        self.publisher: PublisherProcess | None = None
        self.publisher_done = False  # its arrays are in (published_ok, sent_ns)
        #: Kernel byte counts of every client socket, by role.
        self.tcp = {"sub": TcpTally(), "pub": TcpTally()}
        self.errors = 0
        self.error_messages: list[str] = []
        self.start_ns = 0
        self.sent = 0  # publishes handed to the wire (warm-up included)
        self.expected_so_far = 0  # deliveries owed for measured messages published so far
        self.up_on_sub = 0  # measured messages sent up subscriber connections
        self.phase = "connect"
        self.window_start: dict | None = None
        self.window_end: dict | None = None
        #: The pause between warm-up and measurement: the measured schedule starts this late.
        self.pause_ns = 0
        #: Why the byte window may hold more than the measured messages (None: it does not).
        self.bytes_window_note: str | None = None
        #: Shortest subscriber connect (TCP + upgrade / first request): >= 1 round trip.
        self.connect_rtt_ns = 0
        self.drain_end_ns = 0
        #: Deliveries received after this instant are late (0: not decided yet).
        self.late_after_ns = 0
        self.drain_bound_s = 0.0
        self.gc_note = "not frozen"
        self.stopped_ns = 0  # when a signal stopped the point early (0: it was not)

    # Errors from every part end here

    def note_error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_messages) < KEEP_ERRORS:
            self.error_messages.append(message)
        if self.errors <= EMIT_ERRORS:
            emit("error", message=message)

    @property
    def procs(self) -> list[int]:
        """Every load-generator process of this point (their CPU is the client's)."""
        pids = [os.getpid()]
        if self.publisher is not None and self.publisher.pid is not None:
            pids.append(self.publisher.pid)
        return pids

    # The point, phase by phase

    async def run(self) -> None:
        await self._connect()
        await self._publish_all()
        await self._drain()

    async def _connect(self) -> None:
        spec, plan = self.spec, self.plan
        if plan.route != ROUTE_WS_SUB and self.is_conductor:
            self.publisher = PublisherProcess(spec)
        connecting = self._connect_subscribers()  # the publisher starts meanwhile (~0.2 s)
        await (self.publisher.start_beside(connecting) if self.publisher else connecting)
        # Everything allocated so far lives to the end: keep the collector off it.
        gc.collect()
        gc.freeze()
        self.gc_note = "gc.collect() + gc.freeze() after connecting, before warm-up"
        emit("ready", clients=spec.clients, procs=self.procs)

    #: Whether this process runs the point (publisher, phases); a shard does not.
    is_conductor = True

    async def _connect_subscribers(self) -> None:
        spec, plan = self.spec, self.plan
        options: dict = {}
        if spec.sub_tcp_address is not None:  # a path in front of the listener: its address
            options["tcp_addr"] = spec.sub_tcp_address
        elif spec.transport == "tcp":  # the listener's port: asked once, not per subscriber
            options["tcp_port"] = await discover_tcp_port(spec.sub_url, spec.ssl_context())
        if reader_enabled() and self.reader is None and spec.http != "2":
            # (HTTP/2 multiplexes subscriptions on one connection: its frames stay with h2.)
            self.reader = FastReader(linger_ms=linger_ms_for(spec.transport, plan.route == ROUTE_WS_SUB))
            options["reader"] = self.reader
        # HTTP/1.1 or HTTP/2 (pages of streams_per_connection subscriptions): clients.subscribers.
        self.subscribers = make_subscribers(
            spec, [plan.topics[log.topic_k] for log in self.logs], self.raws, self.members,
            tcp=self.tcp["sub"], on_error=self.note_error, on_message=_ignore, **options)
        gate = asyncio.Semaphore(spec.connect_concurrency)
        connect_ns: list[int] = []

        async def start(sub: Subscriber) -> None:
            async with gate:
                t0 = time.monotonic_ns()
                await sub.start()
                connect_ns.append(time.monotonic_ns() - t0)

        results = await asyncio.gather(*(start(s) for s in self.subscribers), return_exceptions=True)
        self.connect_rtt_ns = min(connect_ns, default=0)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise ClientError(
                f"{len(failed)} of {len(results)} {spec.transport} subscribers could not "
                f"connect to {spec.sub_url}; first: {failed[0]}"
            )
        await asyncio.sleep(SETTLE_S.get(spec.transport, DEFAULT_SETTLE_S))

    async def _publish_all(self) -> None:
        """Warm-up, a pause until the warm-up has been delivered, the measurement.

        Why a pause: the byte counters are cumulative per connection, so the
        window can only be honest if no warm-up message is on its way when it
        opens and no measured message has been read before it opens. Pausing
        the publisher gives a moment with nothing in flight: warm-up
        deliveries complete, the window opens, then the measured schedule
        starts. Its intended times move by the pause (``pause_ns``, in
        counters.json as ``warmup_pause_ms``), so the pause is never counted
        as latency; ``measure_start_ns`` / ``_end_ns`` move with it.
        """
        schedule = self.schedule
        first = self.first
        self.start_ns = start = time.monotonic_ns() + LEAD_NS
        pub = self.publisher
        if pub is None:  # messages go up the subscribers' own sockets, from this loop
            await self._publish_in_loop(start)
            return
        pub.tell(cmd="start", start_ns=start)
        self._set_phase("warmup")
        done = await pub.expect("warmup_done", schedule.warmup_ns / 1e9 + PUBLISHER_SLACK_S)
        self.sent = first
        await self._settle_warmup(done["ok_per_topic"])
        self.pause_ns = max(0, time.monotonic_ns() - (start + schedule.warmup_ns))
        self.window_start = await self.snapshot()
        self._set_phase("measure")
        pub.tell(cmd="measure", pause_ns=self.pause_ns)
        await _sleep_until(start + self.pause_ns + schedule.total_ns)
        self._published(await pub.expect("sent", PUBLISHER_SLACK_S))

    def _published(self, sent: dict) -> None:
        """What the publisher process did: its arrays, errors, the deliveries owed."""
        pub = self.publisher
        assert pub is not None
        self.publisher_done = True
        first, n = self.first, len(self.schedule)
        self.sent = sent["sent"]
        for message in sent["error_messages"]:
            self.note_error(message)
        self.errors += max(0, sent["errors"] - len(sent["error_messages"]))
        published = pub.published()
        self.published_ok[:] = published["ok"]
        self.sent_ns[:] = published["sent_ns"]
        per_topic = self.plan.subscribers_per_topic
        measured = np.flatnonzero(self.published_ok[first:n]) + first
        self.expected_so_far = int(per_topic[self.topic_of[measured]].sum())

    async def _publish_in_loop(self, start: int) -> None:
        """Echo / chat over WebSocket: each client publishes on its own socket."""
        schedule = self.schedule
        offsets = schedule.offsets_ns.tolist()
        first, n = self.first, len(schedule)
        send = self._ws_sender()
        if schedule.warmup_ns > 0:
            self._set_phase("warmup")
            await _send_due(send, offsets, 0, first, start)
            await _sleep_until(start + schedule.warmup_ns)
            ok = self.published_ok[:first]
            owed = np.bincount(self.topic_of[:first][ok], minlength=len(self.plan.topics)).tolist()
            await self._settle_warmup(owed)
        self.pause_ns = max(0, time.monotonic_ns() - (start + schedule.warmup_ns))
        self.window_start = await self.snapshot()
        self._set_phase("measure")
        await _send_due(send, offsets, first, n, start + self.pause_ns)
        await _sleep_until(start + self.pause_ns + schedule.total_ns)

    def _ws_sender(self):
        topic_of = self.topic_of.tolist()
        sender_of = self.sender_of.tolist()
        per_topic = self.plan.subscribers_per_topic.tolist()
        size = self.spec.payload_bytes
        first = self.first
        sockets = self.subscribers
        monotonic_ns = time.monotonic_ns
        from duplexbench.contract import make_payload

        def send_ws(i: int) -> None:
            self.sent += 1
            ts = monotonic_ns()
            try:
                sockets[sender_of[i]].publish_nowait(make_payload(i, size), ts)  # type: ignore[attr-defined]
            except ClientError as exc:
                self.note_error(f"publish {i} not sent: {exc}")
                return
            self.published_ok[i] = True
            self.sent_ns[i] = ts
            if i >= first:
                self.expected_so_far += per_topic[topic_of[i]]
                self.up_on_sub += 1

        return send_ws

    async def _settle_warmup(self, owed: list[int]) -> None:
        """Wait until every successful warm-up publish reached every subscriber of its topic.

        Topics are fresh and nothing else publishes on them, so the warm-up
        messages of topic k hold seqs 1..w_k: a subscriber has them all once
        its highest seq is >= w_k with no gap below. Bounded by
        max(WARMUP_SETTLE_MIN_S, SETTLE_RTTS x the shortest connect); when the
        bound expires the window opens anyway and ``bytes_window_note`` says so.
        """
        bound_ns = max(round(WARMUP_SETTLE_MIN_S * 1e9), SETTLE_RTTS * self.connect_rtt_ns)
        deadline = time.monotonic_ns() + bound_ns
        logs, raws = self.logs, self.raws
        k = 0  # logs[:k] hold their whole warm-up
        while True:
            while k < len(logs) and raws[k].highest() >= owed[logs[k].topic_k] and not logs[k].gaps:
                k += 1
            if k == len(logs):
                return
            if time.monotonic_ns() >= deadline:
                missing = sum(1 for log in logs[k:] if log.highest < owed[log.topic_k] or log.gaps)
                self.bytes_window_note = (
                    f"warm-up not fully delivered after {bound_ns / 1e9:.2f} s ({missing} of "
                    f"{len(logs)} subscribers still owed warm-up messages): "
                    "the byte window may include bytes of warm-up messages")
                return
            await asyncio.sleep(SETTLE_POLL_S)

    async def stop_early(self) -> None:
        """After a signal: a short drain, so messages already on their way are
        not counted as lost merely because we stopped listening."""
        self.stopped_ns = time.monotonic_ns()
        if self.publisher is not None and not self.publisher_done and self.start_ns:
            sent = await self.publisher.stop()
            if sent is not None:
                self._published(sent)
        if self.start_ns and self.window_end is None:
            await self._drain(min(self.spec.drain_s, STOP_DRAIN_S))

    async def _drain(self, seconds: float | None = None) -> None:
        """Wait for stragglers: until every measured message reached every
        subscriber, or past the late bound (deliveries after it are late)."""
        self._set_phase("drain")
        spec = self.spec
        now = time.monotonic_ns()
        end = self._measure_end_ns() or now
        self.drain_bound_s = drain_bound_s(await self.latencies_ns(), spec.drain_max_s)
        self.late_after_ns = end + round(self.drain_bound_s * 1e9)
        listen = listen_s(self.drain_bound_s, spec.drain_s, spec.drain_max_s)
        if seconds is not None:
            listen = seconds
        deadline = max(now, end) + round(listen * 1e9) if seconds is None else now + round(listen * 1e9)
        await self.wait_delivered(deadline)
        await self._end_window()

    async def latencies_ns(self) -> np.ndarray:
        """Send-to-receive latencies of the measured deliveries so far."""
        self.flush()
        samples = self.samples
        return (np.frombuffer(samples.recv_ns, dtype=np.int64)
                - np.frombuffer(samples.sent_ns, dtype=np.int64))

    def owed(self) -> int:
        """Deliveries of measured messages owed to this process's subscribers."""
        return self.expected_so_far

    async def wait_delivered(self, deadline_ns: int) -> None:
        """Until every owed delivery is in, or the deadline."""
        while time.monotonic_ns() < deadline_ns:
            self.flush()
            if self.samples.delivered >= self.owed():
                return
            await asyncio.sleep(0.005)

    # Bookkeeping

    def flush(self) -> None:
        """Account every read kept raw so far."""
        for raw in self.raws:
            raw.flush()

    async def _end_window(self) -> None:
        if self.window_end is None:
            self.window_end = await self.snapshot()
            self.drain_end_ns = time.monotonic_ns()
            if self.publisher is not None:
                await self.publisher.finish()

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        emit("phase", phase=phase)

    def fault_stats(self) -> list[tuple[int, int, int, int, bool]]:
        """Per subscriber: (log position, disconnects, longest recovery ns, resets,
        still down at the end)."""
        return [(j, raw.disconnects, raw.recovery_ns_max, raw.resets, bool(raw.down_since))
                for j, raw in enumerate(self.raws)]

    async def collect(self) -> None:
        """Before writing: gather what other processes saw (a sharded point)."""

    async def snapshot(self) -> dict:
        return self._snapshot()

    def last_snapshot(self) -> dict:
        """A snapshot without waiting (after a signal: shards may be gone)."""
        return self._snapshot()

    is_sharded = False

    def _snapshot(self) -> dict:
        """Cumulative counts now: kernel bytes per role, client counters."""
        reads = self.reader.counts() if self.reader else {"reads": 0, "wakeups": 0, "taken": 0}
        requests = sum(s.stats.http_requests for s in self.subscribers)  # after counts()
        connections = sum(s.stats.connections for s in self.subscribers)
        return {"sub": self.tcp["sub"].total(), "requests": requests, "connections": connections,
                "sent": self.sent, "reconnects": sum(s.stats.reconnects for s in self.subscribers),
                **reads}

    def _measure_end_ns(self) -> int | None:
        """The scheduled end, or when a signal cut the window short."""
        if not self.start_ns:
            return None
        start = self.start_ns + self.pause_ns  # the measured schedule's origin
        end = start + self.schedule.total_ns
        if self.stopped_ns:
            end = max(start + self.schedule.warmup_ns, min(end, self.stopped_ns))
        return end

    def progress(self) -> dict:
        sent = self.sent
        if self.publisher is not None and self.start_ns and self.phase in ("warmup", "measure"):
            due = time.monotonic_ns() - self.start_ns - (self.pause_ns if self.phase == "measure" else 0)
            sent = int(np.searchsorted(self.schedule.offsets_ns, due, side="right"))
        return {
            "phase": self.phase,
            "sent": sent,
            # Reads not yet accounted count as one delivery each (an estimate for the display).
            "delivered": self.samples.delivered + sum(raw.unflushed for raw in self.raws),
            "expected": self.expected_so_far,
            "lost_so_far": sum(len(log.gaps) for log in self.logs),
        }

    async def report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.spec.progress_interval_s)
            if self.phase != "connect":  # "ready" comes first (the runner waits for it)
                emit("progress", **self.progress())

    async def close(self) -> None:
        clients: list = list(self.subscribers)
        closing = asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        # Retrieved even when a signal cuts the wait short (no "never retrieved" noise).
        closing.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.note_error(f"closing {len(clients)} clients took over {CLOSE_TIMEOUT_S:.0f} s")
        if self.reader is not None:
            self.reader.close()
        if self.publisher is not None:
            await self.publisher.close()

    # Results

    def intended_offsets_ns(self) -> np.ndarray:
        """When each message was due, from ``start_ns``: the measured ones after the pause."""
        offsets = self.schedule.offsets_ns.astype(np.int64, copy=True)
        offsets[self.first:] += self.pause_ns
        return offsets

    def write(self, complete: bool, reason: str | None) -> dict:
        from .counters import build_counters
        from .output import write_counters, write_samples

        self.flush()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_samples(self.out_dir / "samples.parquet", self.samples, self.start_ns,
                      self.intended_offsets_ns())
        counters = build_counters(self, complete, reason)
        write_counters(self.out_dir / "counters.json", counters)
        return counters


def _ignore(envelope, recv_ns) -> None:
    """Publish-only sockets receive nothing."""
