"""WebSocket over HTTP/2 (RFC 8441): an extended CONNECT stream carrying RFC 6455 frames.

Why: "does SSE over HTTP/2 make WebSocket unnecessary?" needs WebSocket on the
same HTTP/2 connection too, where the server offers it. The stream is opened
with ``:method CONNECT``, ``:protocol websocket`` (allowed only once the
server's SETTINGS carry ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1``), answered
``200``, and from then on its DATA frames carry ordinary WebSocket frames
(masking and the close handshake unchanged, RFC 8441 5), parsed by the
``websockets`` sans-I/O protocol (no handshake of its own: the stream is it).

A server without RFC 8441 (nginx 1.22, any HTTP/1.1-only path) is never
silently reached over HTTP/1.1 instead: :class:`NoRFC8441` says so.

Receives like clients.fastws: each text frame goes to the subscriber's RawLog
(or ``on_message`` without one); reset objects move the cursor; a lost stream
resumes from the highest seq held.
"""

from __future__ import annotations

import asyncio

from websockets.exceptions import InvalidState, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from duplexbench.contract import ContractError, decode_envelope
from duplexbench.contract.cursor import Reset, decode_message
from duplexbench.contract.http import PATH_WS
from duplexbench.contract.websocket import encode_publish

from .base import ClientError, OnError, OnMessage, Subscriber
from .h2conn import H2ClientConnection, H2Stream, NoRFC8441
from .h2link import H2Link

__all__ = ["H2WebSocketSubscriber", "NO_RFC8441"]

#: Larger than any payload the servers accept (1 MiB) plus its envelope.
MAX_MESSAGE = 4 << 20
CONNECT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 1.0
#: The words of the error when the server has no RFC 8441 (tests and reports look for them).
NO_RFC8441 = "HTTP/1.1 upgrade: this path has no RFC 8441"
_TEXT = Opcode.TEXT


class H2WebSocketSubscriber(Subscriber):
    transport = "websocket"
    publishes_on_transport = True
    http = "2"

    def __init__(self, base_url: str, topic: str, on_message: OnMessage, *, cursor: int = 0,
                 role: str = "sub", on_error: OnError | None = None, subscribe: bool = True,
                 link: H2Link | None = None, **fast) -> None:
        super().__init__(base_url, topic, on_message, cursor=cursor, role=role,
                         on_error=on_error, **fast)
        self.subscribe = subscribe
        if link is None:
            link = H2Link(self.base_url, ssl_context=self.ssl_context, tcp=self.tcp,
                          local_addr=self.local_addr)
        self.link = link
        link.users += 1
        self._conn: H2ClientConnection | None = None
        self._stream: H2Stream | None = None
        self._ws: Protocol | None = None
        self._backoff = self._new_backoff()

    async def start(self) -> None:
        """Open the tunnel; return once the server answered 200 (subscribed)."""
        if self._task is not None:
            raise RuntimeError("start() called twice")
        await self._connect()
        self._task = asyncio.create_task(self._run(), name=f"websocket/h2 {self.topic}")

    def publish_nowait(self, data: str, ts: int) -> None:
        """One publish frame now, on this subscriber's own stream."""
        ws, stream = self._ws, self._stream
        if ws is None or stream is None or stream.ended or ws.state is not State.OPEN:
            raise ClientError(f"WebSocket over HTTP/2 for {self.topic} is not open (reconnecting?)")
        try:
            ws.send_text(encode_publish(data, ts).encode())
        except InvalidState as exc:
            raise ClientError(f"cannot send on a WebSocket that is {ws.state.name}: {exc}") from None
        self._flush()

    async def publish(self, data: str, ts: int) -> None:
        self.publish_nowait(data, ts)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        ws, stream = self._ws, self._stream
        if ws is not None and stream is not None and not stream.ended:
            if ws.state is State.OPEN:
                ws.send_close(1000)
                self._flush()
            try:  # the server echoes the Close and ends its side of the stream
                await asyncio.wait_for(asyncio.shield(stream.done_waiter), CLOSE_TIMEOUT_S)
            except (asyncio.TimeoutError, ClientError):
                pass
            if self._conn is not None:
                self._conn.reset(stream)  # no-op when both sides are already closed
        self.link.release()

    def drop_connection(self) -> None:
        """Drop the page's whole connection as a network failure would (tests)."""
        self.link.abort()

    # Internals

    def _path(self) -> bytes:
        query = (f"&cursor={self.cursor_text()}" if self.subscribe else "&subscribe=0")
        return f"{PATH_WS}?topic={self.topic}{query}".encode()

    async def _connect(self) -> None:
        conn = await self.link.connection(self.stats)
        if not conn.connect_protocol:
            raise NoRFC8441(
                f"WebSocket over HTTP/2 to {conn.endpoint.authority}: {NO_RFC8441} (the server's "
                "SETTINGS have no ENABLE_CONNECT_PROTOCOL = 1); use http = 1.1 for WebSocket here")
        ws = Protocol(Side.CLIENT, max_size=MAX_MESSAGE)
        stream = conn.request(b"CONNECT", self._path(), [(b"sec-websocket-version", b"13")],
                              protocol=b"websocket", end_stream=False, stats=self.stats,
                              on_data=lambda data: self._on_data(ws, data))
        self._conn, self._stream, self._ws = conn, stream, ws
        try:
            await asyncio.wait_for(asyncio.shield(stream.headers_waiter), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            conn.reset(stream)
            raise ClientError(f"CONNECT {self._path().decode()}: no answer within "
                              f"{CONNECT_TIMEOUT_S:g} s") from None
        epoch = stream.headers.get("duplexbench-epoch")
        if epoch:
            self.epoch = epoch
        if stream.status != 200:
            body = b""
            try:
                body = (await asyncio.wait_for(stream.done_waiter, CONNECT_TIMEOUT_S)).body
            except (asyncio.TimeoutError, ClientError):
                conn.reset(stream)
            raise ClientError(f"CONNECT {self._path().decode()} (RFC 8441) answered "
                              f"{stream.status}: {body[:200].decode(errors='replace')}")

    def _on_data(self, ws: Protocol, data: bytes) -> None:
        """DATA on the tunnel: WebSocket frames (pings are answered by the protocol)."""
        recv_ns = self._conn.recv_ns if self._conn is not None else 0
        try:
            ws.receive_data(data)
        except ProtocolError:
            pass  # the protocol has queued a Close saying why
        raw = self.on_raw
        for event in ws.events_received():
            if event.__class__ is not Frame or event.opcode is not _TEXT:
                continue
            payload = event.data
            if payload.__class__ is not bytes:  # websockets may hand a bytearray / memoryview
                payload = bytes(payload)
            if payload.startswith(b'{"event"'):
                self._control(payload)
            elif raw is not None:
                raw.feed(payload, recv_ns)
            else:
                try:
                    env = decode_envelope(payload)
                except ContractError as exc:
                    self._error(f"bad frame: {exc}")
                    continue
                self.cursor = env.seq
                self.on_message(env, recv_ns)
        if ws is self._ws:
            self._flush()

    def _control(self, payload: bytes) -> None:
        """A reset object (contract v2: the server restarted): continue from its cursor."""
        try:
            reset = decode_message(payload)
        except ContractError as exc:
            self._error(f"bad control frame: {exc}")
            return
        if not isinstance(reset, Reset):
            return
        k = int(reset.cursor.rsplit("-", 1)[1])
        self._error(f"server restarted (epoch {self.epoch} -> {reset.epoch}); continuing at {k}")
        self.epoch, self.cursor = reset.epoch, k
        if self.on_raw is not None:
            self.on_raw.reset(k)

    def _flush(self) -> None:
        """What the protocol wants sent: frames as DATA; its end of stream as END_STREAM."""
        ws, stream, conn = self._ws, self._stream, self._conn
        if ws is None or stream is None or conn is None:
            return
        for data in ws.data_to_send():
            try:
                conn.send_data(stream, data, end_stream=not data)
            except ClientError:
                return  # the stream is gone: _run resumes

    async def _run(self) -> None:
        while not self._closing:
            stream = self._stream
            assert stream is not None and self._ws is not None
            try:  # shielded: cancelling this task (close) must not cancel the stream's end
                await asyncio.shield(stream.done_waiter)
                reason = "the server ended the stream"
            except ClientError as exc:
                reason = str(exc)
            if self._closing:
                return
            try:  # the stream's end is the WebSocket's end of data (its TCP close)
                self._ws.receive_eof()
            except EOFError:
                pass
            code = self._ws.close_code
            if self._conn is not None:
                self._conn.reset(stream)
            self._disconnected()
            self.stats.reconnects += 1
            if self.on_raw is not None:
                self.cursor = self.on_raw.highest()
            self._error(f"{reason} (close code {code}); resuming from seq {self.cursor}")
            await self._reconnect()
