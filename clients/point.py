"""One load point in the event loop: connect, publish open loop, drain, count.

:class:`LoadGen` connects every subscriber (and the publisher pool), waits
until all are subscribed, publishes at the scheduled times (warm-up, then
the measurement window), waits up to ``drain_s`` for messages in flight and
turns what it saw into ``counters.json`` and ``samples.parquet``. The process
around it (signals, exit codes) is :mod:`clients.loadgen`.

Wire bytes are snapshotted when the measurement starts and when the drain
ends (``"bytes_window": "measure"``), so connection handshakes and warm-up
traffic are not in the per-message figures; ``wire_point`` has the whole
point, handshakes included, for amortising them. Between warm-up and
measurement publishing pauses until every warm-up message has reached every
subscriber that expects it (bounded, see :meth:`LoadGen._settle_warmup`), so
the window counts the bytes of the measured messages only.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

from duplexbench.contract import encode_envelope, make_payload
from duplexbench.contract.websocket import encode_publish

from .accounting import Samples, SubscriberLog, tally
from .base import ClientError, Subscriber, WireSnapshot
from .longpoll import LongPollSubscriber
from .output import write_counters, write_samples
from .plan import ROUTE_POST, ROUTE_WS_PUB, ROUTE_WS_SUB, Plan, make_plan
from .publisher import HttpPublisher
from .schedule import Schedule, make_schedule
from .spec import LoadSpec
from .stream import NDJSONSubscriber, SSESubscriber
from .websocket import WebSocketSubscriber

__all__ = ["LoadGen", "SUBSCRIBERS", "emit"]

SUBSCRIBERS: dict[str, type[Subscriber]] = {
    "longpoll": LongPollSubscriber,
    "sse": SSESubscriber,
    "ndjson": NDJSONSubscriber,
    "websocket": WebSocketSubscriber,
}

#: Error messages kept in counters.json (the count covers all of them).
KEEP_ERRORS = 20
#: Error messages also sent to stdout as events (the runner shows them).
EMIT_ERRORS = 5
#: Pause after everyone subscribed: a long poll is "subscribed" once sent,
#: and the server should have registered it before the first publish.
SETTLE_S = {"longpoll": 0.2}
DEFAULT_SETTLE_S = 0.05
#: The first message is due this long after the schedule is fixed.
LEAD_NS = 20_000_000
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


def emit(event: str, **fields) -> None:
    """One JSON line on stdout: the runner's view of this process."""
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class LoadGen:
    """One load point: ``await run()``, then ``write(complete, reason)`` and ``close()``."""

    def __init__(self, spec: LoadSpec, out_dir: Path) -> None:
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
        self.logs = [
            SubscriberLog(c, int(self.plan.sub_topic[c]), self.samples, self.first, n)
            for c in range(spec.clients)
        ]
        self.subscribers: list[Subscriber] = []
        self.ws_publishers: list[WebSocketSubscriber] = []
        self.publisher: HttpPublisher | None = None
        self.errors = 0
        self.error_messages: list[str] = []
        self.start_ns = 0
        self.sent = 0  # publishes handed to the wire (warm-up included)
        self.expected_so_far = 0  # deliveries owed for measured messages published so far
        self.up_on_sub = 0  # measured messages sent up subscriber connections
        self.phase = "connect"
        self.window_start: dict[str, WireSnapshot] | None = None
        self.window_end: dict[str, WireSnapshot] | None = None
        #: The pause between warm-up and measurement: the measured schedule starts this late.
        self.pause_ns = 0
        #: Why the byte window may hold more than the measured messages (None: it does not).
        self.bytes_window_note: str | None = None
        #: Shortest subscriber connect (TCP + upgrade / first request): >= 1 round trip.
        self.connect_rtt_ns = 0
        self.drain_end_ns = 0
        self.gc_note = "not frozen"
        self.stopped_ns = 0  # when a signal stopped the point early (0: it was not)

    # Errors from every part end here

    def note_error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_messages) < KEEP_ERRORS:
            self.error_messages.append(message)
        if self.errors <= EMIT_ERRORS:
            emit("error", message=message)

    # The point, phase by phase

    async def run(self) -> None:
        await self._connect()
        await self._publish_all()
        await self._drain()

    async def _connect(self) -> None:
        spec, plan = self.spec, self.plan
        if plan.route == ROUTE_POST:
            self.publisher = HttpPublisher(spec.publish_url, pool_size=spec.publish_pool,
                                           on_error=self.note_error)
            await self.publisher.start()
        elif plan.route == ROUTE_WS_PUB:
            for topic in plan.topics:
                sock = WebSocketSubscriber(spec.publish_url, topic, _ignore, role="pub",
                                           subscribe=False, on_error=self.note_error)
                await sock.start()
                self.ws_publishers.append(sock)
        cls = SUBSCRIBERS[spec.transport]
        extra: dict = {}
        if spec.transport == "longpoll":
            extra = {"keepalive": spec.keepalive, "max_batch": spec.max_batch,
                     "poll_timeout_s": spec.poll_timeout_s, "publisher": self.publisher}
        elif spec.transport in ("sse", "ndjson"):
            extra = {"publisher": self.publisher}
        self.subscribers = [
            cls(spec.sub_url, plan.topics[log.topic_k], log.on_message,
                on_error=self.note_error, **extra)
            for log in self.logs
        ]
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
        # Everything allocated so far lives to the end: keep the collector off it.
        gc.collect()
        gc.freeze()
        self.gc_note = "gc.collect() + gc.freeze() after connecting, before warm-up"
        emit("ready", clients=len(self.subscribers))

    async def _publish_all(self) -> None:
        """Warm-up, a pause until the warm-up has been delivered, the measurement.

        Why a pause: the byte counters are cumulative per connection, so the
        window can only be honest if no warm-up message is on its way when it
        opens (its bytes would be counted without its delivery: at 1,000 msg/s
        and 64 kB payloads that inflated bytes per message by up to 150 B) and
        no measured message has been read before it opens (snapshotting later
        while publishing went on would lose those bytes instead). Pausing the
        publisher gives a moment with nothing in flight: warm-up deliveries
        complete, the window opens, then the measured schedule starts. Its
        intended times move by the pause (``pause_ns``, in counters.json as
        ``warmup_pause_ms``), so the pause is never counted as latency
        (no coordinated-omission artefact); ``measure_start_ns`` / ``_end_ns``
        move with it. At low rates the warm-up is delivered before its
        scheduled end and the pause is 0.
        """
        schedule = self.schedule
        offsets = schedule.offsets_ns.tolist()  # Python ints: no numpy scalars in the loop
        n, first = len(offsets), self.first
        self.start_ns = start = time.monotonic_ns() + LEAD_NS
        send = self._sender()
        if schedule.warmup_ns > 0:
            self._set_phase("warmup")
            await _send_due(send, offsets, 0, first, start)
            await _sleep_until(start + schedule.warmup_ns)
            await self._settle_warmup()
            self.pause_ns = max(0, time.monotonic_ns() - (start + schedule.warmup_ns))
        self.window_start = self._snapshot()
        self._set_phase("measure")
        await _send_due(send, offsets, first, n, start + self.pause_ns)
        # The window lasts duration_s even when the last message was due earlier.
        await _sleep_until(start + self.pause_ns + schedule.total_ns)

    async def _settle_warmup(self) -> None:
        """Wait until every successful warm-up publish reached every subscriber of its topic.

        Topics are fresh and nothing else publishes on them, so the warm-up
        messages of topic k hold seqs 1..w_k (w_k = its successful warm-up
        publishes): a subscriber has them all once its highest seq is >= w_k
        with no gap below. Bounded by max(WARMUP_SETTLE_MIN_S, SETTLE_RTTS x
        the shortest connect); when the bound expires (a stalled or lossy
        point) the window opens anyway and ``bytes_window_note`` says so.
        """
        bound_ns = max(round(WARMUP_SETTLE_MIN_S * 1e9), SETTLE_RTTS * self.connect_rtt_ns)
        deadline = time.monotonic_ns() + bound_ns
        publisher = self.publisher
        owed: list[int] | None = None
        logs = self.logs
        k = 0  # logs[:k] hold their whole warm-up (monotone: no new seqs arrive meanwhile)
        while True:
            if publisher is None or not publisher.in_flight:
                if owed is None:  # every warm-up POST answered: published_ok is final
                    ok = self.published_ok[:self.first]
                    owed = np.bincount(self.topic_of[:self.first][ok],
                                       minlength=len(self.plan.topics)).tolist()
                while k < len(logs) and logs[k].highest >= owed[logs[k].topic_k] \
                        and not logs[k].gaps:
                    k += 1
                if k == len(logs):
                    return
            if time.monotonic_ns() >= deadline:
                if owed is None:
                    what = f"{publisher.in_flight if publisher else 0} warm-up POSTs unanswered"
                else:
                    missing = sum(1 for log in logs[k:] if log.highest < owed[log.topic_k]
                                  or log.gaps)
                    what = f"{missing} of {len(logs)} subscribers still owed warm-up messages"
                self.bytes_window_note = (
                    f"warm-up not fully delivered after {bound_ns / 1e9:.2f} s ({what}): "
                    "the byte window may include bytes of warm-up messages")
                return
            await asyncio.sleep(SETTLE_POLL_S)

    def _sender(self):
        """The per-message publish function for this point's route."""
        spec, plan = self.spec, self.plan
        topics = plan.topics
        topic_of = self.topic_of.tolist()
        sender_of = self.sender_of.tolist()
        per_topic = plan.subscribers_per_topic.tolist()
        size = spec.payload_bytes
        first = self.first
        monotonic_ns = time.monotonic_ns

        if plan.route == ROUTE_POST:
            publisher = self.publisher
            assert publisher is not None
            done = self._published

            def send(i: int) -> None:
                self.sent += 1
                publisher.submit(topics[topic_of[i]], make_payload(i, size), functools.partial(done, i))

            return send

        sockets = self.ws_publishers if plan.route == ROUTE_WS_PUB else self.subscribers
        owner = topic_of if plan.route == ROUTE_WS_PUB else sender_of
        on_sub = plan.route == ROUTE_WS_SUB

        def send_ws(i: int) -> None:
            self.sent += 1
            ts = monotonic_ns()
            try:
                sockets[owner[i]].publish_nowait(make_payload(i, size), ts)  # type: ignore[attr-defined]
            except ClientError as exc:
                self.note_error(f"publish {i} not sent: {exc}")
                return
            self.published_ok[i] = True
            self.sent_ns[i] = ts
            if i >= first:
                self.expected_so_far += per_topic[topic_of[i]]
                if on_sub:
                    self.up_on_sub += 1

        return send_ws

    def _published(self, i: int, sent_ns: int, seq: int | None, error: str | None) -> None:
        """A POST came back (the publisher already reported any error)."""
        if seq is None:
            return
        self.published_ok[i] = True
        self.sent_ns[i] = sent_ns
        if i >= self.first:
            self.expected_so_far += int(self.plan.subscribers_per_topic[self.topic_of[i]])

    async def stop_early(self) -> None:
        """After a signal: a short drain, so messages already on their way are
        not counted as lost merely because we stopped listening."""
        self.stopped_ns = time.monotonic_ns()
        if self.start_ns and self.window_end is None:
            await self._drain(min(self.spec.drain_s, STOP_DRAIN_S))

    async def _drain(self, seconds: float | None = None) -> None:
        self._set_phase("drain")
        deadline = time.monotonic_ns() + round((self.spec.drain_s if seconds is None else seconds) * 1e9)
        samples = self.samples
        while time.monotonic_ns() < deadline:
            in_flight = self.publisher.in_flight if self.publisher is not None else 0
            if not in_flight and samples.delivered >= self.expected_so_far:
                break
            await asyncio.sleep(0.01)
        self._end_window()

    # Bookkeeping

    def _end_window(self) -> None:
        if self.window_end is None:
            self.window_end = self._snapshot()
            self.drain_end_ns = time.monotonic_ns()

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        emit("phase", phase=phase)

    def _snapshot(self) -> dict[str, WireSnapshot]:
        sub = WireSnapshot()
        for s in self.subscribers:
            sub = sub + s.stats.snapshot()
        pub = WireSnapshot()
        if self.publisher is not None:
            pub = pub + self.publisher.stats.snapshot()
        for s in self.ws_publishers:
            pub = pub + s.stats.snapshot()
        return {"sub": sub, "pub": pub}

    def progress(self) -> dict:
        return {
            "phase": self.phase,
            "sent": self.sent,
            "delivered": self.samples.delivered,
            "expected": self.expected_so_far,
            "lost_so_far": sum(len(log.gaps) for log in self.logs),
        }

    async def report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.spec.progress_interval_s)
            emit("progress", **self.progress())

    async def close(self) -> None:
        clients: list = [*self.subscribers, *self.ws_publishers]
        if self.publisher is not None:
            clients.append(self.publisher)
        closing = asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        # Retrieved even when a signal cuts the wait short (no "never retrieved" noise).
        closing.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.note_error(f"closing {len(clients)} clients took over {CLOSE_TIMEOUT_S:.0f} s")

    # Results

    def counters(self, complete: bool, reason: str | None) -> dict:
        spec, schedule = self.spec, self.schedule
        n, first = len(schedule), self.first
        self._end_window()
        totals = tally(self.logs, self.samples, self.topic_of, self.published_ok, first, n)
        measured_ok = self.published_ok[first:]
        point = self._snapshot()
        window_start = self.window_start or point
        window = {role: (self.window_end[role] - window_start[role]).as_dict()  # type: ignore[index]
                  for role in ("sub", "pub")}
        sizes = self._message_sizes()
        reconnects = sum(s.stats.reconnects for s in self.subscribers)
        reconnects += sum(s.stats.reconnects for s in self.ws_publishers)
        nodelay = _nodelay(self)
        return {
            "complete": complete,
            "reason": reason,
            "engine": "native",
            "transport": spec.transport,
            "pattern": spec.pattern,
            "clients": spec.clients,
            "published": int(measured_ok.sum()),
            "publish_failed": self._publish_failed(int(measured_ok.sum())),
            "published_total": int(self.published_ok.sum()),
            "scheduled": int(schedule.measured),
            "expected": totals.expected,
            "delivered": totals.delivered,
            "lost": totals.lost,
            "duplicated": totals.duplicated,
            "reordered": totals.reordered,
            "message_bytes": sizes[0],
            "message_bytes_min": sizes[1],
            "message_bytes_max": sizes[2],
            # What one measured message costs going up, as sent: the WebSocket publish
            # frame's payload ({"ts":..,"data":..}), or the POST body (the payload).
            "message_bytes_up": self._message_bytes_up(),
            "messages_up_on_sub": self.up_on_sub,
            "bytes_window": "measure",
            "bytes_window_note": self.bytes_window_note,
            "warmup_pause_ms": round(self.pause_ns / 1e6, 3),
            "wire": window,
            "wire_point": {role: snap.as_dict() for role, snap in point.items()},
            "reconnects": reconnects,
            "errors": self.errors,
            "error_messages": self.error_messages,
            "measure_start_ns": (self.start_ns + self.pause_ns + schedule.warmup_ns
                                 if self.start_ns else None),
            "measure_end_ns": self._measure_end_ns(),
            "drain_end_ns": self.drain_end_ns or None,
            "clock": "CLOCK_MONOTONIC",
            "samples": len(self.samples),
            "tcp_nodelay": nodelay,
            "gc": self.gc_note,
            "spec": json.loads(spec.to_json()),
        }

    def _measure_end_ns(self) -> int | None:
        """The scheduled end, or when a signal cut the window short."""
        if not self.start_ns:
            return None
        start = self.start_ns + self.pause_ns  # the measured schedule's origin
        end = start + self.schedule.total_ns
        if self.stopped_ns:
            end = max(start + self.schedule.warmup_ns, min(end, self.stopped_ns))
        return end

    def _publish_failed(self, measured_ok: int) -> int:
        """Measured publishes attempted that did not succeed (not sent: errors,
        not losses); POSTs still unanswered at the end are among them."""
        attempted = max(0, self.sent - self.first)  # messages go out in index order
        return max(0, attempted - measured_ok)

    def _message_sizes(self) -> tuple[float, int, int]:
        """Mean / min / max encoded envelope of the measured messages published.

        The seq of each is reconstructed as its position on its topic (exact
        up to the order concurrent POSTs reach the hub, which changes a size
        only where a seq gains a digit).
        """
        ok = np.flatnonzero(self.published_ok)
        if not (ok >= self.first).any():
            # Nothing measured was published (e.g. rate 0): the size one would have.
            nominal = len(encode_envelope(1, self.plan.topics[0], time.monotonic_ns(),
                                          make_payload(self.first, self.spec.payload_bytes)))
            return float(nominal), nominal, nominal
        topics = self.topic_of[ok]
        seqs = np.zeros(len(ok), dtype=np.int64)
        counters: dict[int, int] = {}
        for j, k in enumerate(topics.tolist()):
            counters[k] = counters.get(k, 0) + 1
            seqs[j] = counters[k]
        measured = ok >= self.first
        size = self.spec.payload_bytes
        names = self.plan.topics
        lengths = [
            len(encode_envelope(int(seq), names[int(k)], int(ts), make_payload(int(i), size)))
            for i, k, seq, ts in zip(ok[measured], topics[measured], seqs[measured],
                                     self.sent_ns[ok[measured]])
        ]
        return round(float(np.mean(lengths)), 3), int(min(lengths)), int(max(lengths))

    def _message_bytes_up(self) -> float:
        """Mean upstream size of the measured messages published (nominal when none were)."""
        ok = np.flatnonzero(self.published_ok[self.first:]) + self.first
        size = self.spec.payload_bytes
        if self.plan.route == ROUTE_POST:
            indices = ok.tolist() or [self.first]
            lengths = [len(make_payload(i, size).encode()) for i in indices]
        elif len(ok):
            lengths = [len(encode_publish(make_payload(int(i), size), int(ts)).encode())
                       for i, ts in zip(ok.tolist(), self.sent_ns[ok].tolist())]
        else:
            lengths = [len(encode_publish(make_payload(self.first, size),
                                          time.monotonic_ns()).encode())]
        return round(float(np.mean(lengths)), 3)

    def intended_offsets_ns(self) -> np.ndarray:
        """When each message was due, from ``start_ns``: the measured ones after the pause."""
        offsets = self.schedule.offsets_ns.astype(np.int64, copy=True)
        offsets[self.first:] += self.pause_ns
        return offsets

    def write(self, complete: bool, reason: str | None) -> dict:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_samples(self.out_dir / "samples.parquet", self.samples, self.start_ns,
                      self.intended_offsets_ns())
        counters = self.counters(complete, reason)
        write_counters(self.out_dir / "counters.json", counters)
        return counters


def _ignore(envelope, recv_ns) -> None:
    """Publish-only sockets receive nothing."""


def _nodelay(gen: LoadGen) -> bool | None:
    """Whether TCP_NODELAY was on for the subscribers' current connections."""
    states = []
    for sub in gen.subscribers[:50]:
        conn = getattr(sub, "_conn", None)
        if conn is not None and hasattr(conn, "nodelay"):
            states.append(bool(conn.nodelay))
    return all(states) if states else None


async def _send_due(send, offsets: list[int], lo: int, hi: int, base_ns: int) -> None:
    """Open loop: message i (lo <= i < hi) goes out once ``base_ns + offsets[i]`` is due."""
    monotonic_ns, sleep = time.monotonic_ns, asyncio.sleep
    i = lo
    while i < hi:
        now = monotonic_ns()
        due = base_ns + offsets[i]
        if due > now:
            await sleep((due - now) / 1e9)
            continue
        # Everything due by now goes out at once (open loop: no waiting on answers).
        while i < hi and base_ns + offsets[i] <= now:
            send(i)
            i += 1


async def _sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - time.monotonic_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)
