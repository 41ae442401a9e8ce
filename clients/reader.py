"""The load generator's receive loop: one Python call per wake-up reads every ready socket.

Why: at ``make bench``'s 50-subscriber point a prompt client reads once per
delivery, and the kernel's share of that read (the read itself, the ACK it
sends, the server's input of that ACK) is the floor any client pays
(docs/engine-cost.md). Through asyncio, every read also cost a bytes object and
a callback in the event loop, a ``data_received`` / ``buffer_updated`` frame, the
HTTP or WebSocket parser's callbacks and the RawLog's: Python per read, about
as much again as the kernel's part. Here, once a subscription is live, its
socket leaves the event loop's reading (``pause_reading``) and joins an
``epoll`` set of its own, which the event loop watches as one file: a wake-up
runs :meth:`FastReader._on_ready` once, which ``read()``s each ready socket once
and keeps the bytes with the time they were read. Nothing else happens per read.

What the parsers used to do per read happens later, on the same bytes, in
the same order, with the same receive times (:meth:`Sink.drain`, through the
very protocol objects that would have parsed them: httptools for HTTP,
picows for WebSocket): when the RawLog is flushed (warm-up settle, drain,
a reconnect needing the cursor, its read limit), when a sink holds ``limit``
reads, or when the periodic :meth:`FastReader._check` (every ``CHECK_S``) sees
a read that needs an answer or ends the subscription (a WebSocket ping or
close, a stream's last chunk: :meth:`Sink.attention`). A long poll cannot
wait: its sink is ``immediate``, each read is parsed at once and the next
poll written from the same call (clients/longpoll.py), still without asyncio.

A read that finds the connection closed or broken hands the socket back
(:meth:`Sink.hand_back`): pending reads are parsed, the transport reads again,
sees the end itself and runs the subscriber's reconnecting path as before.
The wire is unchanged: one read (so one ACK) per delivery for a prompt
client, the same requests, pongs and close frames. TLS connections are not
taken (the bytes on the socket are ciphertext): they keep the asyncio path.
"""

from __future__ import annotations

import asyncio
import os
import select
import time

from .sink import DEFAULT_LIMIT, Sink

try:  # the loop in C (clients/readloop.c, built by `pip install -e .` where a C compiler is)
    from . import readloop
    readloop.ReadStore  # a build older than clients/readstore.c counts as none
except (ImportError, AttributeError):  # no compiler at install time: the same loop in Python
    readloop = None

__all__ = ["CHECK_S", "DEFAULT_LIMIT", "HOLD_S", "LINGER_MS", "READ_SIZE", "FastReader", "Sink",
           "linger_ms_for", "loop_in_c", "reader_enabled"]

#: How often pending reads are looked at for something that needs an answer (a
#: WebSocket ping must be answered within the server's --ping-timeout, 2 s in tests).
CHECK_S = 0.1
#: Bytes per read: as the floor reader (tools/floor/floor.c) and uvloop's own reads.
READ_SIZE = 65536
#: After a burst of reads, wait this long (ms: epoll's unit) for the next socket to become
#: ready before returning to the event loop: a fan-out message arrives on every socket
#: within a fraction of a millisecond, and each return to the loop and wake-up through it
#: costs more Python than a wait here. Reads stay prompt: epoll returns at the first ready.
LINGER_MS = int(os.environ.get("DUPLEXBENCH_READER_LINGER_MS", "1"))
#: ... but never keep the event loop waiting longer than this in one call.
HOLD_S = 0.002
_monotonic_ns = time.monotonic_ns


def reader_enabled() -> bool:
    """Whether the load generator reads live subscriptions here: yes where Linux's epoll
    exists, unless DUPLEXBENCH_LOADGEN_READER=0 (every read through asyncio, as before:
    for comparisons)."""
    return hasattr(select, "epoll") and os.environ.get("DUPLEXBENCH_LOADGEN_READER", "1") != "0"


def loop_in_c() -> bool:
    """Whether the FastReader's loop runs in C (clients/readloop.c): yes when it was
    built, unless DUPLEXBENCH_READER_C=0 (the Python loop, for comparisons and tests)."""
    return readloop is not None and os.environ.get("DUPLEXBENCH_READER_C", "1") != "0"



def linger_ms_for(transport: str, sends_on_own_sockets: bool) -> int:
    """The linger for a point's reader: LINGER_MS, or 0 (return to the event loop at once).

    0 when messages are sent up the subscribers' own sockets: they leave from the event loop
    on schedule, which the reader must not hold. 0 for long polling too: its answers come one
    poll at a time, not as a fan-out burst, and waiting for the next one in the reader's timed
    epoll_wait put the client's polls on the server as no prompt client does (the server's CPU
    lower, the client's higher): `engines --floor` back to back on 2026-12-06, native
    client/server 0.33 with the linger, 0.25 without, the floor (it re-polls at once) 0.22
    (docs/engine-cost.md).
    """
    if sends_on_own_sockets or transport == "longpoll":
        return 0
    return LINGER_MS

class FastReader:
    """One per subscriber process: ``take(sink)`` once a subscription is live."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 check_s: float = CHECK_S, linger_ms: int = LINGER_MS,
                 hold_s: float = HOLD_S, in_c: bool | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self._ep = select.epoll()
        self.sinks: dict[int, Sink] = {}
        #: fd -> (sink, its store, None); immediate sinks: (sink, None, replay), or with a
        #: long poll's state (sink, None, read_now, state). The store is the sink's own
        #: (it knows its limit; drain() takes its reads).
        self._table: dict[int, tuple] = {}
        #: Which loop reads: C (clients/readloop.c) or Python (the same steps).
        self.in_c = loop_in_c() if in_c is None else (in_c and readloop is not None)
        self._buf = bytearray(READ_SIZE)
        self._bufs = [self._buf]
        self.check_s = check_s
        self.linger_ms = linger_ms
        self._hold_ns = round(hold_s * 1e9)
        self.wakeups = 0
        self.reads = 0
        self.closed = False
        self.loop.add_reader(self._ep.fileno(), self._on_ready_c if self.in_c else self._on_ready)
        self._timer = self.loop.call_later(check_s, self._check)

    def take(self, sink: Sink) -> bool:
        """Read ``sink``'s socket here from now on; False when closed (it stays as it was)."""
        if self.closed:
            return False
        old = self.sinks.get(sink.fd)
        if old is not None:  # a closed socket's number reused: that sink is gone
            self.forget(old)
            old.reader = None
        sink.pause()
        try:
            self._ep.register(sink.fd, select.EPOLLIN)
        except OSError:
            sink.resume()
            return False
        self.sinks[sink.fd] = sink
        if not sink.immediate:
            if self.in_c and not isinstance(sink.store, readloop.ReadStore):
                # The C loop keeps reads in C: no Python object, no page fault per read
                # (clients/readstore.c; its memory is touched now, before any measurement).
                sink.drain()  # nothing kept yet, normally
                sink.store = readloop.ReadStore(sink.limit)
            entry = (sink, sink.store, None)
        elif sink.poll_state is not None and self.in_c:
            # A long poll C may answer (clients/readloop.c); what it leaves: read_now.
            entry = (sink, None, sink.read_now, sink.poll_state)
        else:
            entry = (sink, None, sink.replay)
        self._table[sink.fd] = entry
        sink.reader = self
        if sink.raw is not None:
            sink.raw.source = sink
        return True

    def forget(self, sink: Sink) -> None:
        """Stop watching ``sink``'s socket (the sink's own release() calls this)."""
        if self.sinks.get(sink.fd) is sink:
            del self.sinks[sink.fd]
            del self._table[sink.fd]
            try:
                self._ep.unregister(sink.fd)
            except (OSError, ValueError):  # closed already: epoll dropped it
                pass

    def _on_ready(self) -> None:
        """Every ready socket read once, then again each socket that becomes ready
        while we linger (up to ``linger_ms`` without one, ``hold_s`` in all): the only
        Python per delivery in the window. The receive time is taken right after each
        read, as the transport took it; a socket is read as soon as epoll says it is
        ready, never later."""
        table = self._table
        poll = self._ep.poll
        readv, bufs, buf = os.readv, self._bufs, self._buf
        now = _monotonic_ns
        events = poll(0)
        linger, until = self.linger_ms, now() + self._hold_ns
        while events:
            self.wakeups += 1
            self.reads += len(events)
            for fd, _ in events:
                entry = table.get(fd)
                if entry is None:
                    continue
                sink, store, replay = entry[0], entry[1], entry[2]
                try:
                    n = readv(fd, bufs)  # into one buffer: no 64 KiB object per read
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # reset: the transport will find the socket closed
                    sink.hand_back()
                    continue
                t = now()
                if not n:  # the peer closed: the transport's own path takes it from here
                    sink.hand_back()
                elif store is None:  # immediate: parsed now (a long poll re-polls)
                    self._parse(replay, sink, buf[:n], t)
                elif store.append(buf[:n], t):  # at its limit: parsed now
                    self._parse(sink.drain, sink)
            if not linger or now() >= until:
                return  # the event loop's turn (it calls again if more is ready)
            events = poll(linger / 1000)

    def _on_ready_c(self) -> None:
        """:meth:`_on_ready`'s loop in C; what it leaves to Python (a sink at its limit,
        a socket's end, a replay that raised) is done here, in the order found."""
        wakeups, reads, later = readloop.read_ready(self._ep.fileno(), self._table,
                                                     self.linger_ms, self._hold_ns)
        self.wakeups += wakeups
        self.reads += reads
        for kind, sink, data, _ in later:
            if kind == readloop.LATER_BROKEN:  # an immediate sink's replay raised ``data``
                self._broken(sink, data)
            elif kind == readloop.LATER_FULL:
                self._parse(sink.drain, sink)
            else:
                sink.hand_back()

    def _parse(self, parse, sink: Sink, *args) -> None:
        """``parse(*args)``: a bug in a parser callback is reported, not the loop's end."""
        try:
            parse(*args)
        except Exception as exc:
            self._broken(sink, exc)

    def _broken(self, sink: Sink, exc: Exception) -> None:
        """A parse raised: report it as the event loop reports a callback's exception,
        and give the socket back to its transport (whose own path then applies)."""
        self.loop.call_exception_handler({"message": f"FastReader: parsing a read of fd "
                                                     f"{sink.fd} failed", "exception": exc})
        sink.hand_back()

    def _check(self) -> None:
        """Pending reads that cannot wait (pings, closes, a stream's end) are parsed now."""
        if self.closed:
            return
        try:
            for sink in list(self.sinks.values()):
                kept = len(sink.store)
                if sink.checked < kept:
                    new = sink.store.joined(sink.checked)
                    sink.checked = kept
                    if sink.attention(new):
                        sink.drain()
        except Exception as exc:
            self.loop.call_exception_handler({"message": "FastReader: check failed",
                                              "exception": exc})
        finally:
            self._timer = self.loop.call_later(self.check_s, self._check)

    def counts(self) -> dict[str, int]:
        """Reads, wake-ups and sockets taken, for a counter snapshot; first every sink's
        counts kept aside are settled (a long poll's requests answered in C)."""
        for sink in self.sinks.values():
            sink.settle()
        return {"reads": self.reads, "wakeups": self.wakeups, "taken": len(self.sinks)}

    def drain_all(self) -> None:
        """Parse every pending read of every sink (the RawLogs are then complete)."""
        for sink in list(self.sinks.values()):
            sink.drain()

    def close(self) -> None:
        """Every socket back to its transport, pending reads parsed; the loop stops watching."""
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        for sink in list(self.sinks.values()):
            sink.hand_back()
        self.loop.remove_reader(self._ep.fileno())
        self._ep.close()
