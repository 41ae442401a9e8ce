"""WebSocket subscriber: the ``websockets`` sans-I/O protocol over our own
``asyncio.Protocol``.

Why not ``websockets.connect``: the benchmark needs the exact bytes on the
wire (handshake, frame headers, masks, pings and pongs), so the socket is
ours and every ``write`` / ``data_received`` is counted, while all of RFC 6455
(handshake validation, masking, fragmentation, close handshake, answering
pings) is left to ``websockets.client.ClientProtocol``. No extensions are
offered, so frames are never compressed and bytes mean the same on every
transport. Client text frames publish (``encode_publish``), so with
``upstream = transport`` a message travels up this very connection.
"""

from __future__ import annotations

import asyncio
import time

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Response as WSResponse
from websockets.protocol import State
from websockets.uri import parse_uri

from duplexbench.contract import ContractError, decode_envelope
from duplexbench.contract.http import PATH_WS
from duplexbench.contract.websocket import encode_publish
from duplexbench.tcp import set_nodelay

from .base import Backoff, ClientError, OnError, OnMessage, Subscriber, WireStats

__all__ = ["WebSocketConnection", "WebSocketSubscriber"]

_TEXT = Opcode.TEXT
#: Larger than any payload the servers accept (1 MiB) plus its envelope.
MAX_MESSAGE = 4 << 20
#: How long to wait for the server to close TCP after the close handshake.
CLOSE_TIMEOUT_S = 1.0


class WebSocketConnection(asyncio.Protocol):
    """One WebSocket connection; text frames go to ``on_text(payload, recv_ns)``."""

    def __init__(self, uri: str, stats: WireStats, on_text, on_lost) -> None:
        self.stats = stats
        self.protocol = ClientProtocol(parse_uri(uri), max_size=MAX_MESSAGE)
        self.transport: asyncio.Transport | None = None
        self.nodelay = False
        self._on_text = on_text
        self._on_lost = on_lost
        self._opened: asyncio.Future | None = None
        self._closed: asyncio.Future | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.lost = False  # the TCP connection is gone

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.connections += 1
        self.nodelay = set_nodelay(transport)
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        self._closed = loop.create_future()
        self.protocol.send_request(self.protocol.connect())
        self.stats.http_requests += 1  # the upgrade request
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.stats.bytes_down += len(data)
        recv_ns = time.monotonic_ns()
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if event.__class__ is Frame:
                if event.opcode is _TEXT:
                    self._on_text(event.data, recv_ns)
                # Pings are answered by the protocol (the pong is in data_to_send).
            elif isinstance(event, WSResponse):
                self._handshake_done(event)
        self._flush()

    def eof_received(self) -> bool:
        self.protocol.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(ClientError(
                f"WebSocket connection closed during the handshake{': ' + str(exc) if exc else ''}"
            ))
            self._opened.exception()  # retrieved: start() reports it
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self._on_lost(self, exc)

    # Sending

    def send_text(self, payload: bytes) -> None:
        try:
            self.protocol.send_text(payload)
        except InvalidState as exc:
            raise ClientError(f"cannot send on a WebSocket that is {self.protocol.state.name}: {exc}") from None
        self._flush()

    @property
    def is_open(self) -> bool:
        # An aborted socket leaves the protocol OPEN (it never saw a close): check TCP too.
        return self.protocol.state is State.OPEN and not self.lost

    async def wait_open(self) -> None:
        assert self._opened is not None
        await self._opened

    async def close(self) -> None:
        """Close handshake (1000), then wait briefly for the server to close TCP."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1000)
            self._flush()
        else:
            self.transport.close()
        assert self._closed is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.transport.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # Internals

    def _handshake_done(self, response: WSResponse) -> None:
        if self._opened is None or self._opened.done():
            return
        exc = self.protocol.handshake_exc
        if exc is None:
            self._opened.set_result(None)
        else:
            body = (response.body or b"")[:200].decode(errors="replace")
            self._opened.set_exception(ClientError(
                f"WebSocket handshake refused ({response.status_code}): {exc} {body}".rstrip()
            ))
            self._opened.exception()

    def _flush(self) -> None:
        transport = self.transport
        for data in self.protocol.data_to_send():
            if data:
                self.stats.bytes_up += len(data)
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.protocol.close_expected() and self._close_timer is None:
            # The client waits for the server to close TCP, but not forever.
            self._close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, transport.abort)


class WebSocketSubscriber(Subscriber):
    transport = "websocket"
    publishes_on_transport = True

    def __init__(
        self,
        base_url: str,
        topic: str,
        on_message: OnMessage,
        *,
        cursor: int = 0,
        role: str = "sub",
        on_error: OnError | None = None,
        subscribe: bool = True,
    ) -> None:
        super().__init__(base_url, topic, on_message, cursor=cursor, role=role, on_error=on_error)
        self.subscribe = subscribe  # False: a publish-only socket (?subscribe=0)
        self._conn: WebSocketConnection | None = None
        self._backoff = Backoff()
        self._lost: asyncio.Event | None = None

    # Public methods

    async def start(self) -> None:
        """Connect; return once the server accepted the upgrade (subscribed)."""
        if self._task is not None:
            raise RuntimeError("start() called twice")
        self._lost = asyncio.Event()
        await self._connect()
        self._task = asyncio.create_task(self._run(), name=f"websocket {self.topic}")

    async def publish(self, data: str, ts: int) -> None:
        self.publish_nowait(data, ts)

    def publish_nowait(self, data: str, ts: int) -> None:
        """Write one publish frame now (writes never wait: open-loop friendly)."""
        conn = self._conn
        if conn is None or not conn.is_open:
            raise ClientError(f"WebSocket for {self.topic} is not open (reconnecting?)")
        conn.send_text(encode_publish(data, ts).encode())

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    def drop_connection(self) -> None:
        """Abort the TCP connection as a network failure would (tests)."""
        if self._conn is not None:
            self._conn.abort()

    @property
    def connection(self) -> WebSocketConnection | None:
        return self._conn

    # Internals

    def _uri(self) -> str:
        e = self.endpoint
        uri = f"ws://{e.authority}{PATH_WS}?topic={self.topic}"
        return uri + (f"&cursor={self.cursor}" if self.subscribe else "&subscribe=0")

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        e = self.endpoint
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: WebSocketConnection(self._uri(), self.stats, self._on_text, self._on_conn_lost),
                e.host, e.port,
            ), 10.0)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ClientError(f"cannot connect to {e.authority}: {exc or type(exc).__name__}") from None
        self._conn = conn
        try:
            await asyncio.wait_for(conn.wait_open(), 10.0)
        except (asyncio.TimeoutError, ClientError, InvalidHandshake) as exc:
            conn.abort()
            raise ClientError(f"WebSocket {self._uri()}: {exc or 'handshake timed out'}") from None
        if not conn.lost and self._lost is not None:
            self._lost.clear()  # losses of earlier attempts are handled already

    def _on_text(self, payload: bytes, recv_ns: int) -> None:
        try:
            env = decode_envelope(payload)
        except ContractError as exc:
            self._error(f"bad frame: {exc}")
            return
        self.cursor = env.seq
        self.on_message(env, recv_ns)

    def _on_conn_lost(self, conn: WebSocketConnection, exc: Exception | None) -> None:
        if conn is self._conn and self._lost is not None:
            self._lost.set()

    async def _run(self) -> None:
        assert self._lost is not None
        while not self._closing:
            await self._lost.wait()
            self._lost.clear()
            if self._closing:
                return
            conn = self._conn
            code = conn.protocol.close_code if conn is not None else None
            self.stats.reconnects += 1
            self._error(f"connection lost (close code {code}); resuming from seq {self.cursor}")
            await self._reconnect()
