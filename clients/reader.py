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

__all__ = ["CHECK_S", "HOLD_S", "LINGER_MS", "READ_SIZE", "FastReader", "Sink", "reader_enabled"]

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
#: Reads a sink keeps before parsing them (memory bound; the RawLog's own limit
#: applies after that, clients/point.py sets both).
DEFAULT_LIMIT = 4096

_monotonic_ns = time.monotonic_ns


def reader_enabled() -> bool:
    """Whether the load generator reads live subscriptions here: yes where Linux's epoll
    exists, unless DUPLEXBENCH_LOADGEN_READER=0 (every read through asyncio, as before:
    for comparisons)."""
    return hasattr(select, "epoll") and os.environ.get("DUPLEXBENCH_LOADGEN_READER", "1") != "0"


class Sink:
    """One taken connection: its reads (bytes, receive time) until they are parsed.

    Subclasses (clients/http11.py, clients/fastws.py) say how a read is parsed
    (:meth:`replay`), what in new reads cannot wait (:meth:`attention`), and how
    the transport stops and resumes reading.
    """

    #: Parse every read at once (a long poll answers and re-polls), not later.
    immediate = False

    def __init__(self, fd: int, raw=None, limit: int = DEFAULT_LIMIT) -> None:
        self.fd = fd
        #: The subscriber's RawLog (clients.accounting): while taken, its flush() parses
        #: this sink's pending reads first, so the log is complete whenever it is read.
        self.raw = raw
        self.chunks: list[bytes] = []
        self.times: list[int] = []
        self.limit = limit
        #: chunks[:checked] were looked at by attention() already.
        self.checked = 0
        self.reader: FastReader | None = None
        self._draining = False

    # What subclasses provide

    def replay(self, data: bytes, recv_ns: int) -> None:  # pragma: no cover - interface
        """Parse one read, received at ``recv_ns``, as the transport would have."""
        raise NotImplementedError

    def attention(self, new: list[bytes]) -> bool:
        """Whether reads ``new`` (the ones not looked at yet) need parsing now."""
        return False

    def pause(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def resume(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    # The life cycle

    def drain(self) -> None:
        """Parse every pending read, in order. Re-entrant: a parse that ends up here
        again (the RawLog flushing at its limit) finds nothing pending. Reads that
        attention() has not seen are shown to it first: it sees every read once."""
        if self._draining or not self.chunks:
            return
        self._draining = True
        try:
            while self.chunks:
                # Copies, then the lists emptied in place: the reader holds their appends.
                chunks, times = self.chunks[:], self.times[:]
                if self.checked < len(chunks):
                    self.attention(chunks[self.checked:])
                self.chunks.clear()
                self.times.clear()
                self.checked = 0
                replay = self.replay
                for data, t in zip(chunks, times):
                    replay(data, t)
        finally:
            self._draining = False

    @property
    def pending(self) -> int:
        return len(self.chunks)

    @property
    def taken(self) -> bool:
        return self.reader is not None

    def release(self) -> None:
        """Leave the reader (before the socket closes): parse what is pending, and
        never read this file descriptor again. The transport does not read either:
        call :meth:`resume` for that (:meth:`hand_back`)."""
        reader = self.reader
        if reader is not None:
            self.reader = None
            reader.forget(self)
        self.drain()
        if self.raw is not None and self.raw.source is self:
            self.raw.source = None

    def hand_back(self) -> None:
        """The socket goes back to the event loop: the transport reads again (and sees
        an end or an error itself: the subscriber's reconnecting path runs as before)."""
        if self.reader is None:
            return
        self.release()
        self.resume()


class FastReader:
    """One per subscriber process: ``take(sink)`` once a subscription is live."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 check_s: float = CHECK_S, linger_ms: int = LINGER_MS,
                 hold_s: float = HOLD_S) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self._ep = select.epoll()
        self.sinks: dict[int, Sink] = {}
        #: fd -> (sink, its chunks' append, its times' append); immediate sinks:
        #: (sink, None, replay).
        self._table: dict[int, tuple] = {}
        self._buf = bytearray(READ_SIZE)
        self._bufs = [self._buf]
        self.check_s = check_s
        self.linger_ms = linger_ms
        self._hold_ns = round(hold_s * 1e9)
        self.wakeups = 0
        self.reads = 0
        self.closed = False
        self.loop.add_reader(self._ep.fileno(), self._on_ready)
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
        self._table[sink.fd] = ((sink, None, sink.replay) if sink.immediate
                                else (sink, sink.chunks.append, sink.times.append))
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
                sink, add_chunk, add_time = entry
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
                elif add_chunk is None:  # immediate: parsed now (a long poll re-polls)
                    try:
                        add_time(buf[:n], t)
                    except Exception as exc:  # a bug in a parser callback: not the loop's end
                        self._broken(sink, exc)
                else:
                    add_chunk(buf[:n])
                    add_time(t)
                    if len(sink.chunks) >= sink.limit:
                        try:
                            sink.drain()
                        except Exception as exc:
                            self._broken(sink, exc)
            if not linger or now() >= until:
                return  # the event loop's turn (it calls again if more is ready)
            events = poll(linger / 1000)

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
                chunks = sink.chunks
                if sink.checked < len(chunks):
                    new = chunks[sink.checked:]
                    sink.checked = len(chunks)
                    if sink.attention(new):
                        sink.drain()
        except Exception as exc:
            self.loop.call_exception_handler({"message": "FastReader: check failed",
                                              "exception": exc})
        finally:
            self._timer = self.loop.call_later(self.check_s, self._check)

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
