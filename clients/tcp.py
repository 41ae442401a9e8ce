"""The plain-TCP subscriber: one connection, a subscribe line, then a line per envelope.

The floor under every other transport (duplexbench/contract/tcp.py), so the
client is as thin as the others' fast paths: an ``asyncio.Protocol`` whose
reads go to the subscriber's ``RawLog`` as they are (delimiter ``\\n``; the
envelopes are found by the accounting's regular expression after the window)
once the server's first line (the hello line, or the reset object after a
restart) has been taken off. Bytes are the kernel's (TCP_INFO via the ``tcp``
tally), as for the others. Without ``on_raw`` (tests, tools) each line is
decoded and handed to ``on_message``.

Where the listener is: ``/healthz`` ``"tcp_port"`` at the host of ``base_url``
(:func:`discover_tcp_port`; the load generator asks once per process and
passes ``tcp_port`` to every subscriber). A connection that cannot be made
asks again before the next attempt: a restarted server keeps its HTTP port
but may have a new TCP one. ``tcp_addr`` (LoadSpec ``sub_tcp``: a network path
in front of the listener) is a fixed address instead, never asked for: the
harness keeps the listener's port across restarts so the path stays valid. With an ``ssl_context`` the
connection is TLS (the servers' TCP listener speaks TLS when they do).

Resume: every (re)connection sends the cursor it holds (``E-N`` once the
epoch is known), so a reconnect gets exactly what it missed; a reset moves the
cursor to the new instance's ``NEW-K`` (the gap counts as lost); a 410 error
line moves it to the ``cursor`` it names. Reconnects back off exponentially
with full jitter (:class:`clients.base.Backoff`).
"""

from __future__ import annotations

import asyncio
import json
import time

from duplexbench.contract import ContractError, Envelope, Reset
from duplexbench.contract.tcp import (
    Hello,
    LineSplitter,
    TcpError,
    decode_line,
    encode_publish_line,
    encode_subscribe,
)
from duplexbench.tcp import set_nodelay

from .base import ClientError, Endpoint, OnError, OnMessage, Subscriber, parse_base_url

__all__ = ["CONNECT_TIMEOUT_S", "TcpSubscriber", "discover_tcp_port"]

CONNECT_TIMEOUT_S = 10.0
#: The server's first line is short; anything longer before a newline is not a server.
FIRST_LINE_LIMIT = 64 * 1024
#: Lines the general (on_message) path accepts: --max-payload's default, with room.
LINE_LIMIT = 4 << 20


async def discover_tcp_port(base_url: str, ssl_context=None, timeout: float = CONNECT_TIMEOUT_S) -> int:
    """The plain-TCP listener's port, from ``GET /healthz`` of the server at ``base_url``."""
    endpoint = parse_base_url(base_url)
    try:
        async with asyncio.timeout(timeout):
            extra = {"server_hostname": endpoint.host} if ssl_context is not None else {}
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port,
                                                           ssl=ssl_context, **extra)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                             % endpoint.authority.encode())
                answer = await reader.read(-1)
            finally:
                writer.close()
    except (OSError, asyncio.TimeoutError) as exc:
        raise ClientError(f"GET {base_url}/healthz (for tcp_port): {exc or type(exc).__name__}") from None
    head, _, body = answer.partition(b"\r\n\r\n")
    try:
        port = json.loads(body).get("tcp_port") if head.split(b" ")[1] == b"200" else None
    except (ValueError, AttributeError, IndexError):
        port = None
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ClientError(f"{base_url}/healthz names no tcp_port (is the tcp transport mounted?): "
                          f"{answer[:200]!r}")
    return port


class _Protocol(asyncio.Protocol):
    """One connection of a :class:`TcpSubscriber`: the first line, then raw reads."""

    def __init__(self, owner: "TcpSubscriber") -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.first: asyncio.Future = asyncio.get_running_loop().create_future()
        self._head = b""  # bytes before the first line's newline
        self._feed = None  # once the owner has handled the first line: where reads go
        #: Reads after the first line, held until the owner has handled it: a reset line's
        #: backlog (the new instance's messages since its start) comes in the same segment,
        #: and fed before the reset they looked like the old epoch's duplicates (lost).
        self._pending: list[tuple[bytes, int]] = []
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        recv_ns = time.monotonic_ns()
        feed = self._feed
        if feed is not None:
            feed(data, recv_ns)
            return
        if self.first.done():
            self._pending.append((data, recv_ns))
            return
        head = self._head + data
        end = head.find(b"\n")
        if end < 0:
            self._head = head
            if len(head) > FIRST_LINE_LIMIT and not self.first.done():
                self.first.set_exception(ClientError(f"no line from the server: {head[:100]!r}"))
                self.first.exception()
            return
        self._head = b""
        self.first.set_result(head[:end])
        rest = head[end + 1:]
        if rest:
            self._pending.append((rest, recv_ns))

    def start_reading(self) -> None:
        """After the owner handled the first line: reads go to its reader, the held first."""
        self._feed = feed = self.owner._reader()
        pending, self._pending = self._pending, []
        for data, recv_ns in pending:
            feed(data, recv_ns)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        why = ClientError(f"connection closed{f': {exc}' if exc else ' by the server'}")
        if not self.first.done():
            self.first.set_exception(why)
            self.first.exception()  # retrieved: the connect may have given up waiting already
        if not self.lost.done():
            self.lost.set_result(why)
        self.owner._on_lost(self)


class TcpSubscriber(Subscriber):
    transport = "tcp"
    publishes_on_transport = True

    def __init__(self, base_url: str, topic: str, on_message: OnMessage, *, cursor: int = 0,
                 role: str = "sub", on_error: OnError | None = None, subscribe: bool = True,
                 tcp_port: int | None = None, tcp_addr: tuple[str, int] | None = None,
                 **fast) -> None:
        super().__init__(base_url, topic, on_message, cursor=cursor, role=role,
                         on_error=on_error, **fast)
        self.subscribe = subscribe
        self.tcp_port = tcp_port
        #: A fixed (host, port) to connect to (a path in front of the listener), or None.
        self.tcp_addr = tcp_addr
        self._protocol: _Protocol | None = None
        self._sock = None
        self._backoff = self._new_backoff()
        self.nodelay = False

    # Public methods

    async def start(self) -> None:
        """Connect and subscribe; returns once the server's first line said so."""
        if self._task is not None:
            raise RuntimeError("start() called twice")
        await self._connect()
        self._task = asyncio.create_task(self._run(), name=f"tcp {self.topic}")

    def publish_nowait(self, data: str, ts: int) -> None:
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            raise ClientError(f"TCP connection for {self.topic} is not open (reconnecting?)")
        protocol.transport.write(encode_publish_line(data, ts))

    async def publish(self, data: str, ts: int) -> None:
        self.publish_nowait(data, ts)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            self._retire()
            protocol.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(protocol.lost), 1.0)
            except asyncio.TimeoutError:
                if protocol.transport is not None:
                    protocol.transport.abort()

    def drop_connection(self) -> None:
        """Abort the TCP connection as a network failure would (tests)."""
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            self._retire()
            protocol.transport.abort()

    # Internals

    async def _connect(self) -> None:
        endpoint: Endpoint = self.endpoint
        if self.tcp_addr is not None:
            host, port = self.tcp_addr
        else:
            if self.tcp_port is None:
                self.tcp_port = await discover_tcp_port(self.base_url, self.ssl_context)
            host, port = endpoint.host, self.tcp_port
        loop = asyncio.get_running_loop()
        extra = {"ssl": self.ssl_context, "server_hostname": endpoint.host} \
            if self.ssl_context is not None else {}
        where = f"{host}:{port}"
        try:
            _, protocol = await asyncio.wait_for(loop.create_connection(
                lambda: _Protocol(self), host, port,
                local_addr=self.local_addr, **extra), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as exc:
            self.tcp_port = None  # ask /healthz again next time (a restart may move it)
            raise ClientError(f"cannot connect to tcp://{where}: {exc or type(exc).__name__}") from None
        self._protocol = protocol
        self.stats.connections += 1
        transport = protocol.transport
        self.nodelay = set_nodelay(transport)
        if self.tcp is not None:
            self._sock = transport.get_extra_info("socket")
            self.tcp.add(self._sock)
        cursor = self.cursor_text() if self.subscribe else None
        transport.write(encode_subscribe(self.topic, cursor, self.subscribe))
        try:
            first = await asyncio.wait_for(protocol.first, CONNECT_TIMEOUT_S)
        except (ClientError, asyncio.TimeoutError) as exc:
            self._drop(protocol)
            raise ClientError(f"tcp://{where} {self.topic}: no first line: "
                              f"{exc or type(exc).__name__}") from None
        self._first_line(first, protocol, where)
        protocol.start_reading()

    def _first_line(self, line: bytes, protocol: _Protocol, where: str) -> None:
        """The hello line (the epoch), the reset object (a restart) or an error line."""
        try:
            msg = decode_line(line)
        except ContractError as exc:
            self._drop(protocol)
            raise ClientError(f"tcp://{where}: bad first line {line[:200]!r}: {exc}") from None
        if isinstance(msg, Hello):
            self.epoch = msg.epoch
        elif isinstance(msg, Reset):
            self._error(f"server restarted (epoch {self.epoch} -> {msg.epoch}); continuing at {msg.seq}")
            self.epoch, self.cursor = msg.epoch, msg.seq
            if self.on_raw is not None:
                self.on_raw.reset(msg.seq)
        elif isinstance(msg, TcpError):
            self._drop(protocol)
            cursor = msg.extra.get("cursor")
            if msg.status == 410 and isinstance(cursor, str) and "-" in cursor:
                # Our cursor fell out of retention: resume where the server says (the gap is lost).
                epoch, _, k = cursor.rpartition("-")
                self.epoch, self.cursor = epoch, max(self.cursor, int(k))
            raise ClientError(f"tcp://{where} {self.topic}: {msg.status} {msg.error}")
        else:  # an envelope first: not this contract
            self._drop(protocol)
            raise ClientError(f"tcp://{where}: expected a hello line first, got {line[:200]!r}")

    def _reader(self):
        """Where reads go after the first line: the RawLog (cut: a new connection), or a
        line decoder calling ``on_message``."""
        raw = self.on_raw
        if raw is not None:
            raw.cut()
            return raw.feed
        split = LineSplitter(LINE_LIMIT).feed
        on_message = self.on_message

        def feed(data: bytes, recv_ns: int) -> None:
            try:
                lines = split(data)
            except ContractError as exc:
                self._error(f"bad TCP stream: {exc}")
                self.drop_connection()
                return
            for line in lines:
                try:
                    msg = decode_line(line)
                except ContractError as exc:
                    self._error(f"bad TCP line: {exc}")
                    continue
                if isinstance(msg, Envelope):
                    self.cursor = msg.seq
                    on_message(msg, recv_ns)
                elif isinstance(msg, TcpError):
                    self._error(f"server error line: {msg.status} {msg.error}")

        return feed

    def _drop(self, protocol: _Protocol) -> None:
        self._retire()
        if protocol.transport is not None:
            protocol.transport.abort()

    def _retire(self) -> None:
        if self._sock is not None and self.tcp is not None:
            self.tcp.retire(self._sock)
            self._sock = None

    def _on_lost(self, protocol: _Protocol) -> None:
        if protocol is self._protocol:
            self._retire()

    async def _run(self) -> None:
        while not self._closing:
            protocol = self._protocol
            assert protocol is not None
            why = await asyncio.shield(protocol.lost)  # close() cancels us, not the future
            if self._closing:
                return
            self._disconnected()
            self.stats.reconnects += 1
            if self.on_raw is not None:
                self.cursor = self.on_raw.highest()
            self._error(f"{why}; resuming from seq {self.cursor}")
            await self._reconnect()
