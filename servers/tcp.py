"""Plain TCP: a second listener on the same hub, the floor under every other transport.

Why: every other transport wraps the same envelope in framing and HTTP; this one
sends it as a line (``envelope + \\n``, duplexbench/contract/tcp.py), so the
difference between it and the others is what their framing costs. It shares
everything else with them: the hub, retention and cursors, the fan-out (a
:class:`~servers.fanout.Sink` of kind ``TCP``: framed once per message, written
straight to ready sockets, queued only while back-pressured, the burst rule and
slow consumers), heartbeats, the graceful stop, and TLS when ``--tls`` is on.

One :class:`TcpConnection` (an ``asyncio.Protocol``, so the hub can write to its
transport synchronously) per client. Its life:

    WAITING for the subscribe line -> bad line                -> error line, close
                                   -> subscribe (hello line)  -> SUBSCRIBED
                                   -> subscribe=false         -> PUBLISHING
    SUBSCRIBED / PUBLISHING -> publish lines (the burst rule: reading pauses while
                               a subscriber of the topic is congested)
                            -> bad publish line               -> error line, close
                            -> congested past --slow-grace   -> aborted (counted)
                            -> server shutdown (queue flushed) -> closed (FIN)

After an error line the server half-closes and discards what the client still
sends for a moment (a lingering close), so the line is not lost to a reset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from duplexbench.contract import ContractError
from duplexbench.contract.tcp import (
    LINE_OVERHEAD,
    LineSplitter,
    LineTooLong,
    decode_publish_line,
    decode_subscribe,
    encode_error,
    encode_hello,
)
from duplexbench.tcp import set_nodelay

from .fanout import TCP, SinkState
from .hub import CursorAhead, CursorGone, Hub, HubError, TooManyTopics
from .metrics import Metrics
from .retention import Unavailable

__all__ = ["LINGER_S", "TcpConnection", "TcpListener"]

log = logging.getLogger(__name__)

#: After an error line (or the shutdown's close) a peer gets this long to take it and go.
LINGER_S = 1.0


class TcpListener:
    """The listening socket and its open connections."""

    def __init__(self, hub: Hub, metrics: Metrics, max_payload: int) -> None:
        self.hub = hub
        self.metrics = metrics
        self.max_line = max_payload + LINE_OVERHEAD
        self.max_payload = max_payload
        self.connections: set[TcpConnection] = set()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, host: str, port: int, ssl_context=None) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: TcpConnection(self), host, port, ssl=ssl_context, backlog=4096,
            reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()

    async def close_all(self, timeout: float) -> None:
        """After the hub's flush and shutdown (subscribers are closing): close the rest
        (publish-only and not yet subscribed connections), wait for all to be gone."""
        for conn in list(self.connections):
            conn.close_gracefully(linger=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort()


class TcpConnection(asyncio.Protocol):
    """One client. ``transport`` (None once lost) and ``_paused`` (its write buffer is
    above the high-water mark) are what the hub's fan-out reads, as with aiohttp's."""

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.hub = listener.hub
        self.transport: asyncio.Transport | None = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future] = []
        self._splitter = LineSplitter(listener.max_line)
        self.topic: str | None = None
        self.sink = None
        self._closing = False
        #: Lines read while the burst rule holds this publisher (None: not held).
        self._held: deque[bytes] | None = None
        self._room_task: asyncio.Task | None = None

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        set_nodelay(transport)
        self.listener.connections.add(self)
        self.listener.metrics.connections_open["tcp"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.listener.connections.discard(self)
        self.listener.metrics.connections_open["tcp"] -= 1
        if self.sink is not None:
            self.hub.unsubscribe(self.sink)
        if self._room_task is not None:
            self._room_task.cancel()
        self._wake_writers()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writers()

    def eof_received(self) -> bool:
        # The client's EOF (a half-close too) ends the connection: a client that closed
        # must not stay subscribed until the next write to it fails.
        return False

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # lingering after an error line: what the client still sends is dropped
        try:
            lines = self._splitter.feed(data)
        except LineTooLong as exc:
            self.fail(413, str(exc))
            return
        if self._held is not None:
            self._held.extend(lines)
            return
        self._handle(deque(lines))

    async def _drain_helper(self) -> None:
        """Until the write buffer is below its low-water mark (the sink's writer awaits it)."""
        if not self._paused or self.transport is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _wake_writers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- lines --

    def _handle(self, lines: deque[bytes]) -> None:
        hub = self.hub
        while lines and not self._closing:
            line = lines.popleft()
            if hub.remote:  # workers behind a broker: each line waits for Redis, in order
                self._hold(lines, self._remote_line(line))
                return
            if self.topic is None:
                self._subscribe(line)
                continue
            self._publish(line)
            if hub.congested_topic(self.topic) and not hub.closing and not self._closing:
                # The burst rule: stop reading this publisher until the topic has room.
                self._hold(lines, hub.wait_room(self.topic))
                return

    def _hold(self, lines: deque[bytes], work) -> None:
        """Stop reading this connection while ``work`` runs, then go on with ``lines``."""
        self._held = lines
        self.transport.pause_reading()  # type: ignore[union-attr]
        self._room_task = asyncio.get_running_loop().create_task(self._resume_after(work))

    async def _resume_after(self, work) -> None:
        await work
        held, self._held = self._held, None
        self._room_task = None
        if self.transport is None or self._closing:
            return
        self.transport.resume_reading()
        self._handle(held or deque())

    async def _remote_line(self, line: bytes) -> None:
        """One line through the broker hub: the cache in step before a subscription, the
        publish accepted by Redis before the next line is read (order), the burst rule."""
        hub = self.hub
        try:
            if self.topic is None:
                request = decode_subscribe(line)
                if request.subscribe:
                    await hub.prepare(request.topic, request.cursor)
                self._subscribe(line)
                return
            args = self._publish_args(line)
            if args is None or hub.closing:
                return
            await hub.publish_remote(self.topic, *args)
            if hub.congested_topic(self.topic) and not hub.closing and not self._closing:
                await hub.wait_room(self.topic)
        except ContractError as exc:
            self.fail(400, str(exc))
        except Unavailable as exc:  # the broker is unreachable: the HTTP transports' 503
            self.fail(503, str(exc))
        except TooManyTopics as exc:
            self.fail(503, str(exc))
        except HubError as exc:
            self.fail(400, str(exc))

    def _subscribe(self, line: bytes) -> None:
        hub = self.hub
        try:
            request = decode_subscribe(line)
        except ContractError as exc:
            self.fail(400, str(exc))
            return
        self.topic = request.topic
        if not request.subscribe:
            self.transport.write(encode_hello(hub.epoch))  # type: ignore[union-attr]
            return
        try:
            start, reset = hub.position(request.topic, request.cursor)
            hub.reserve(request.topic)
            first = reset + b"\n" if reset is not None else encode_hello(hub.epoch, start)
            self.sink = hub.subscribe(request.topic, start, TCP, self, first)
        except CursorGone as exc:
            body = exc.as_json()
            body.pop("error")
            if not exc.epoch:  # raised by the retention ring, which knows no epoch
                body.update(epoch=hub.epoch, cursor=f"{hub.epoch}-{exc.oldest_seq - 1}")
            self.fail(410, str(exc), **body)
            return
        except CursorAhead as exc:
            self.fail(400, str(exc), last_seq=exc.last_seq)
            return
        except TooManyTopics as exc:
            self.fail(503, str(exc))
            return
        self.sink.on_leave = self._on_leave

    def _publish_args(self, line: bytes) -> tuple[str, int] | None:
        """(data, ts) of a publish line; None after answering a bad one with its error line."""
        try:
            data, ts = decode_publish_line(line)
        except ContractError as exc:
            self.fail(400, str(exc))
            return None
        limit = self.listener.max_payload
        # UTF-8 takes at most 4 bytes a character: most lines skip the encode.
        if len(data) * 4 > limit and len(data.encode()) > limit:
            self.fail(413, f"data exceeds --max-payload {limit} bytes")
            return None
        return data, ts if ts is not None else time.time_ns()

    def _publish(self, line: bytes) -> None:
        hub = self.hub
        args = self._publish_args(line)
        if args is None or hub.closing:
            return  # a bad line (answered), or read after the shutdown began (as WebSocket)
        try:
            hub.publish(self.topic, *args)  # type: ignore[arg-type]
        except TooManyTopics as exc:
            self.fail(503, str(exc))
        except HubError as exc:
            self.fail(400, str(exc))

    # -- ending --

    def fail(self, status: int, reason: str, **extra) -> None:
        """One error line, then a lingering close: the client's last answer."""
        if self._closing or self.transport is None:
            return
        self._closing = True
        if self.sink is not None:
            self.hub.unsubscribe(self.sink)  # no delivery may follow the error line
        self.transport.write(encode_error(status, reason, **extra))
        self._linger()

    def _on_leave(self, left: SinkState) -> None:
        if left is SinkState.OVERFLOWED:
            # A slow consumer cannot take even a FIN in order: the socket goes (it
            # resumes from its cursor), as a stream's does.
            self.abort()
        elif not self._closing:
            # Server shutdown, after the flush: the listener aborts what is left at its
            # deadline (an abort's reset could discard what the client has not read yet).
            self.close_gracefully(linger=False)

    def close_gracefully(self, linger: bool = True) -> None:
        """Everything written goes out, then FIN; ``linger``: a peer still there after
        LINGER_S is aborted."""
        if self._closing or self.transport is None:
            return
        self._closing = True
        if self.sink is not None:
            self.hub.unsubscribe(self.sink)
        self._linger(linger)

    def _linger(self, abort_later: bool = True) -> None:
        transport = self.transport
        assert transport is not None
        if transport.can_write_eof():
            transport.write_eof()  # FIN once the buffer is out; reading goes on (discarded)
        else:
            transport.close()  # TLS cannot half-close
        if abort_later:
            asyncio.get_running_loop().call_later(LINGER_S, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
