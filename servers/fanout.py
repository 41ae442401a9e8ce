"""Fan-out at platform speed: frame once per transport, write straight to ready sockets.

A :class:`Sink` is one subscriber connection (a stream, a WebSocket or a plain
TCP connection). When a message is published the hub frames it ONCE per kind of
sink (the WebSocket frame, the SSE event, the NDJSON line, each with or without
HTTP chunk framing, the TCP line)
and, for every sink of the topic, either

- writes those bytes straight into the socket's transport, synchronously, when
  the sink is *ready* (nothing queued and the transport not paused, i.e. its
  write buffer is below asyncio's high-water mark), as python-websockets'
  ``broadcast()`` does: no task switch and no await per delivery; or
- appends them to the sink's queue and makes sure its writer task runs. The
  queue and the task exist only while the connection is back-pressured; once
  the queue is written out the sink is ready again. Order is kept because a
  sink with anything queued is never written to directly.

DUPLEXBENCH_INJECT_DELAY_MS sends every delivery through the queue: each
message is due N ms after it was published (``published_at``) and a write
carries every message already due, one sleep per write, not per message, so
each delivery is ~N ms late and throughput is kept (a plain per-write sleep
would delay a message arriving during it by up to 2N).

DUPLEXBENCH_INJECT_CPU_US spends N us of CPU (a busy-wait, :func:`burn`) per
delivered message wherever one is written: k queued messages written at once
pay k x N.

The queue's length drives the burst rule (the hub's business): above
``high`` the sink is *congested* and its topic's publishers wait; it stays
congested until it falls below ``low`` or is dropped as a slow consumer.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from typing import Callable

from duplexbench.contract.websocket import OP_TEXT, encode_frame

__all__ = [
    "KIND_LABELS",
    "NDJSON",
    "NDJSON_CHUNKED",
    "SSE",
    "SSE_CHUNKED",
    "TCP",
    "WEBSOCKET",
    "Sink",
    "SinkState",
    "burn",
    "chunk",
    "frame_for",
]

#: Sink kinds: one framing each. HTTP/1.1 streams are chunked; HTTP/1.0 ones are not.
WEBSOCKET, SSE_CHUNKED, SSE, NDJSON_CHUNKED, NDJSON, TCP = range(6)
KIND_LABELS = ("websocket", "sse", "sse", "ndjson", "ndjson", "tcp")
#: The writer hands the transport at most this much per write, then looks at pause again.
WRITE_BUDGET = 256 * 1024


def chunk(data: bytes) -> bytes:
    """HTTP/1.1 chunked transfer coding of one chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def burn(ns: int) -> None:
    """Spend ``ns`` nanoseconds of CPU: a busy-wait on this thread's CPU clock (a sleep
    would cost nothing and let the loop serve others meanwhile; a wall clock would count
    the time the process sat preempted on a busy machine, and spend less than asked)."""
    clock = time.thread_time_ns
    end = clock() + ns
    while clock() < end:
        pass


def frame_for(kind: int, seq: int, body: bytes, epoch: bytes) -> tuple[bytes, int]:
    """(bytes on the wire, bytes counted in metrics) of one message for one kind.

    Metrics count the transport's own framing (WebSocket header, SSE fields,
    the NDJSON / TCP newline) but not HTTP's chunk framing, as before."""
    if kind == WEBSOCKET:
        wire = encode_frame(OP_TEXT, body)
        return wire, len(wire)
    if kind <= SSE:
        event = b"id: %s-%d\ndata: %s\n\n" % (epoch, seq, body)
        return (chunk(event) if kind == SSE_CHUNKED else event), len(event)
    line = body + b"\n"
    return (chunk(line) if kind == NDJSON_CHUNKED else line), len(line)


class SinkState(enum.Enum):
    OPEN = "open"
    OVERFLOWED = "overflowed"  # dropped as a slow consumer
    CLOSED = "closed"  # unsubscribed, client gone, or server shutting down


class Sink:
    """One subscriber connection. ``queue`` holds (wire, counted, published_at)."""

    __slots__ = (
        "kind", "label", "topic", "protocol", "state", "queue", "writer", "high", "low",
        "hard", "congested_at", "last", "on_leave", "done", "hub",
    )

    def __init__(self, hub, kind: int, topic: str, protocol, limit: int, slack: int) -> None:
        self.hub = hub
        self.kind = kind
        self.label = KIND_LABELS[kind]
        self.topic = topic
        #: aiohttp's protocol: ``.transport`` (None once lost) and ``._paused`` (write buffer
        #: above its high-water mark) are what "ready" means.
        self.protocol = protocol
        self.state = SinkState.OPEN
        self.queue: deque = deque()
        self.writer: asyncio.Task | None = None
        self.high = limit + slack  # the resume backlog does not count against the limit
        self.low = max(1, limit // 4)
        self.hard = 2 * limit + slack  # past this, dropped at once whatever the grace
        self.congested_at: float | None = None
        self.last = 0.0  # loop time of the last write (heartbeats after silence)
        self.on_leave: Callable[[SinkState], None] | None = None
        #: Resolved when the sink leaves OPEN: the handler waits on it.
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    # -- writing (called by the hub, synchronous) --

    def ready(self) -> bool:
        protocol = self.protocol
        transport = protocol.transport
        return (not self.queue and not protocol._paused and transport is not None
                and not transport.is_closing())

    def write_now(self, data: bytes) -> None:
        """Straight to the transport (callers checked :meth:`ready` or accept buffering)."""
        transport = self.protocol.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def enqueue(self, item: tuple[bytes, int, float]) -> None:
        if self.state is not SinkState.OPEN:
            return  # dropped or closing: not fed any more
        queue = self.queue
        queue.append(item)
        n = len(queue)
        if n > self.high and self.congested_at is None:
            self.hub.congested(self)
        if n > self.hard:
            self.leave(SinkState.OVERFLOWED)
            return
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write_out())

    def leave(self, state: SinkState) -> None:
        if self.state is not SinkState.OPEN:
            return
        self.state = state
        self.queue.clear()  # memory back at once; the client resumes from its cursor
        self.hub.detach(self)
        if not self.done.done():
            self.done.set_result(state)
        if self.on_leave is not None:
            self.on_leave(state)

    async def _write_out(self) -> None:
        """The writer: only while something is queued; exits when the queue is empty."""
        protocol, queue, hub = self.protocol, self.queue, self.hub
        delay, cpu_ns = hub.delay_s, hub.cpu_ns
        loop = asyncio.get_running_loop()
        try:
            while queue and self.state is SinkState.OPEN:
                if protocol.transport is None or protocol.transport.is_closing():
                    self.leave(SinkState.CLOSED)
                    return
                if protocol._paused:
                    # Shielded: aiohttp shares one drain waiter per connection, and
                    # cancelling it would break whoever else waits on it (a Close).
                    await asyncio.shield(protocol._drain_helper())
                    continue
                if delay:
                    wait = queue[0][2] + delay - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        continue
                parts, size, count, counted = [], 0, 0, 0
                due = loop.time() - delay if delay else None
                while queue and size < WRITE_BUDGET:
                    if due is not None and queue[0][2] > due:
                        break
                    wire, n, _ = queue.popleft()
                    parts.append(wire)
                    size += len(wire)
                    counted += n
                    count += 1
                if cpu_ns:
                    burn(cpu_ns * count)
                protocol.transport.write(b"".join(parts))
                self.last = loop.time()
                hub.metrics.delivered[self.label] += count
                hub.metrics.bytes_written[self.label] += counted
                if self.congested_at is not None and len(queue) < self.low:
                    hub.relieved(self)
        except (ConnectionError, RuntimeError):  # the socket went away under us
            self.leave(SinkState.CLOSED)
        finally:
            self.writer = None
