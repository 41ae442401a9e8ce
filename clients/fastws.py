"""The load generator's WebSocket subscriber: picows (compiled) under the hood.

Why: profiled at 50 subscribers x 200 msg/s, the ``websockets`` sans-I/O
client spent most of the engine's Python time parsing frames in pure
Python, so the load generator cost as much CPU per delivered message as
the server it measured. picows parses frames, masks, answers pings and runs
the close handshake in Cython; each text frame reaches :meth:`on_ws_frame`
as bytes and goes to the subscriber's RawLog as it is (accounted after the
window, ``accounting.RawLog``). Bytes on the wire are not counted here: they
come from the kernel (clients.tcpinfo), which also sees what picows writes
by itself (pongs, the close frame).

:class:`clients.websocket.WebSocketSubscriber` stays the general client
(``on_message`` per envelope) for tests and tools.
"""

from __future__ import annotations

import asyncio
import json
import time

from picows import WSListener, WSMsgType, ws_connect

from duplexbench.contract.http import PATH_WS
from duplexbench.contract.websocket import encode_publish
from duplexbench.tcp import set_nodelay

from .base import ClientError, OnError, OnMessage, Subscriber

__all__ = ["FastWebSocketSubscriber"]

_TEXT = WSMsgType.TEXT
_monotonic_ns = time.monotonic_ns
_CLOSE = WSMsgType.CLOSE
_CONTINUATION = WSMsgType.CONTINUATION
CONNECT_TIMEOUT_S = 10.0


class _Listener(WSListener):
    """picows callbacks for one connection of one subscriber."""

    def __init__(self, owner: "FastWebSocketSubscriber") -> None:
        super().__init__()
        self.owner = owner
        self.feed = owner.on_raw.feed
        self.fragments: list[bytes] = []
        self.close_code: int | None = None

    def on_ws_frame(self, transport, frame) -> None:
        recv_ns = _monotonic_ns()
        if frame.fin and not self.fragments:
            payload = frame.get_payload_as_bytes()
            # An envelope (the hot path), told apart without frame.msg_type: picows turns
            # that into a Python enum member per access, the dearest step of this callback.
            # No other frame reaching us starts so: a Close payload begins with its code
            # (b'{"' would be 31522, no valid code), pings are answered inside picows, we
            # send no ping so get no pong, and the contract has no binary frames.
            if payload.startswith(b'{"seq":'):
                self.feed(payload, recv_ns)
                return
        kind = frame.msg_type
        if kind is _TEXT or kind is _CONTINUATION:
            if not frame.fin or self.fragments:  # servers do not fragment; be correct anyway
                self.fragments.append(frame.get_payload_as_bytes())
                if not frame.fin:
                    return
                payload, self.fragments = b"".join(self.fragments), []
            else:
                payload = frame.get_payload_as_bytes()
            if payload.startswith(b'{"event"'):
                self.owner._control(payload)
            else:
                self.feed(payload, recv_ns)
        elif kind is _CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(self.close_code)
            transport.disconnect()

    def on_ws_disconnected(self, transport) -> None:
        self.owner._on_lost(self)


class FastWebSocketSubscriber(Subscriber):
    transport = "websocket"
    publishes_on_transport = True

    def __init__(self, base_url: str, topic: str, on_message: OnMessage, *, cursor: int = 0,
                 role: str = "sub", on_error: OnError | None = None, subscribe: bool = True,
                 **fast) -> None:
        super().__init__(base_url, topic, on_message, cursor=cursor, role=role,
                         on_error=on_error, **fast)
        if self.on_raw is None:
            raise ValueError("FastWebSocketSubscriber needs on_raw (use WebSocketSubscriber otherwise)")
        self.subscribe = subscribe
        self._transport = None
        self._listener: _Listener | None = None
        self._sock = None
        self._lost: asyncio.Event | None = None
        self._backoff = self._new_backoff()
        self.nodelay = False

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("start() called twice")
        self._lost = asyncio.Event()
        await self._connect()
        self._task = asyncio.create_task(self._run(), name=f"websocket {self.topic}")

    def publish_nowait(self, data: str, ts: int) -> None:
        transport = self._transport
        if transport is None or transport.is_disconnected:
            raise ClientError(f"WebSocket for {self.topic} is not open (reconnecting?)")
        transport.send(_TEXT, encode_publish(data, ts).encode())

    async def publish(self, data: str, ts: int) -> None:
        self.publish_nowait(data, ts)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        transport = self._transport
        if transport is not None and not transport.is_disconnected:
            self._retire()
            transport.send_close(1000)
            try:
                await asyncio.wait_for(transport.wait_disconnected(), 1.0)
            except asyncio.TimeoutError:
                transport.disconnect(graceful=False)

    def drop_connection(self) -> None:
        if self._transport is not None:
            self._retire()
            self._transport.underlying_transport.abort()

    # Internals

    def _url(self) -> str:
        e = self.endpoint
        scheme = "wss" if self.ssl_context is not None else "ws"
        url = f"{scheme}://{e.authority}{PATH_WS}?topic={self.topic}"
        return url + (f"&cursor={self.cursor_text()}" if self.subscribe else "&subscribe=0")

    async def _connect(self) -> None:
        url = self._url()
        extra = {"local_addr": self.local_addr} if self.local_addr else {}
        try:
            transport, listener = await asyncio.wait_for(ws_connect(
                lambda: _Listener(self), url, ssl_context=self.ssl_context,
                enable_auto_pong=True, use_aiofastnet=False, **extra,
            ), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ClientError(f"WebSocket {url}: handshake timed out") from None
        except Exception as exc:  # picows raises its own handshake errors and OSError
            raise ClientError(f"WebSocket {url}: {exc or type(exc).__name__}") from None
        self._transport, self._listener = transport, listener
        epoch = _header(transport.response, "duplexbench-epoch")
        if epoch:
            self.epoch = epoch
        self.stats.connections += 1
        self.stats.http_requests += 1  # the upgrade request
        raw = transport.underlying_transport
        self.nodelay = set_nodelay(raw)
        if self.tcp is not None:
            self._sock = raw.get_extra_info("socket")
            self.tcp.add(self._sock)
        if self._lost is not None:
            self._lost.clear()

    def _retire(self) -> None:
        if self._sock is not None and self.tcp is not None:
            self.tcp.retire(self._sock)
            self._sock = None

    def _on_lost(self, listener: _Listener) -> None:
        if listener is self._listener:
            self._retire()
            if self._lost is not None:
                self._lost.set()

    def _control(self, payload: bytes) -> None:
        """A control object in place of an envelope: contract v2's reset (the server
        restarted): continue from its cursor, what we never got counts as lost."""
        try:
            obj = json.loads(payload)
            if obj.get("event") != "reset":
                return
            epoch, k = obj["epoch"], int(str(obj["cursor"]).rsplit("-", 1)[1])
        except (ValueError, KeyError, IndexError, AttributeError):
            self._error(f"bad control frame {payload[:100]!r}")
            return
        self._error(f"server restarted (epoch {self.epoch} -> {epoch}); continuing at {k}")
        self.epoch, self.cursor = epoch, k
        self.on_raw.reset(k)

    async def _run(self) -> None:
        assert self._lost is not None
        while not self._closing:
            await self._lost.wait()
            self._lost.clear()
            if self._closing:
                return
            code = self._listener.close_code if self._listener is not None else None
            self._disconnected()
            self.stats.reconnects += 1
            self.cursor = self.on_raw.highest()
            self._error(f"connection lost (close code {code}); resuming from seq {self.cursor}")
            await self._reconnect()


def _header(response, name: str) -> str | None:
    """A header of picows' upgrade response (None when absent)."""
    headers = getattr(response, "headers", None) or {}
    for key, value in (headers.items() if hasattr(headers, "items") else headers):
        if str(key).lower() == name:
            return value
    return None
