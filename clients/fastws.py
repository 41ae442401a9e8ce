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
import sys
import time

from picows import WSListener, WSMsgType, ws_connect

from duplexbench.contract.http import PATH_WS
from duplexbench.contract.websocket import encode_publish
from duplexbench.tcp import set_nodelay

from .base import ClientError, OnError, OnMessage, Subscriber
from .reader import readloop  # None where clients/readloop.c was not built
from .sink import Sink

__all__ = ["FastWebSocketSubscriber", "WsSink"]

_TEXT = WSMsgType.TEXT
_monotonic_ns = time.monotonic_ns
_PING = WSMsgType.PING
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
        #: When frames are parsed later (WsSink.replay): the time their read was made.
        self.recv_ns = 0
        #: Pings of reads not parsed yet that WsSink answered already (not to answer twice).
        self.answered = 0
        #: Hand the socket to the FastReader at the next frame that ends picows' buffer.
        self.take_at_boundary = False

    def on_ws_frame(self, transport, frame) -> None:
        recv_ns = self.recv_ns or _monotonic_ns()
        if frame.fin and not self.fragments:
            payload = frame.get_payload_as_bytes()
            # An envelope (the hot path), told apart without frame.msg_type: picows turns
            # that into a Python enum member per access, the dearest step of this callback.
            # No other frame reaching us starts so: a Close payload begins with its code
            # (b'{"' would be 31522, no valid code), our servers ping with an empty
            # payload, we send no ping so get no pong, and the contract has no binary frames.
            if payload.startswith(b'{"seq":'):
                self.feed(payload, recv_ns)
                if self.take_at_boundary and frame.last_in_buffer and not frame.tail_size:
                    self.owner.take()
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
        elif kind is _PING:
            # Answered here, not inside picows: a ping the FastReader's sink answered
            # when it arrived (WsSink.attention) is not answered again when parsed.
            if self.answered:
                self.answered -= 1
            else:
                transport.send_pong(frame.get_payload_as_bytes())
        elif kind is _CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(self.close_code)
            transport.disconnect()
            return
        if self.take_at_boundary and frame.last_in_buffer and not frame.tail_size \
                and not self.fragments:
            self.owner.take()

    def on_ws_disconnected(self, transport) -> None:
        self.owner._on_lost(self)


def walk_frames_py(buf: bytes, pos: int) -> tuple[int, int, list[tuple[int, int, int]]]:
    """The frame headers of ``buf`` from ``pos`` (a frame boundary): (pos after the last
    whole frame, beyond len(buf) when a data frame goes on in later reads; the start of an
    incomplete header or control frame, -1 if none; [(opcode, start, end)] of the whole
    control frames' payloads). clients/readloop.c's ``ws_walk`` is the same in C."""
    n, head_at, controls = len(buf), -1, []
    while pos < n:
        if pos + 2 > n:
            head_at = pos
            break
        b0, b1 = buf[pos], buf[pos + 1]
        length, start = b1 & 0x7F, pos + 2
        if length == 126:
            length, start = int.from_bytes(buf[pos + 2:pos + 4], "big"), pos + 4
        elif length == 127:
            length, start = int.from_bytes(buf[pos + 2:pos + 10], "big"), pos + 10
        if b1 & 0x80:  # masked (servers do not mask): the key is part of the header
            start += 4
        if length > sys.maxsize - start:  # a 64-bit length with its top bit set (RFC 6455 5.2)
            raise ValueError("a WebSocket frame longer than memory")
        end = start + length
        if b0 & 0x08:  # a control frame: ping, pong, close (never fragmented)
            if end > n:  # wait for the whole frame
                head_at = pos
                break
            controls.append((b0 & 0x0F, start, end))
        elif start > n:  # a data frame's header is incomplete
            head_at = pos
            break
        pos = end
    return pos, head_at, controls


#: The walk in C where clients/readloop.c was built (every delivered frame is walked).
walk_frames = readloop.ws_walk if readloop is not None else walk_frames_py


class WsSink(Sink):
    """A WebSocket read by the FastReader: frames are parsed later by picows, from
    the same bytes (:meth:`replay`); what cannot wait is found by walking the frame
    headers of new reads (:meth:`attention`): a ping is answered at once (its pong is
    the one picows would have sent), a close is parsed at once (the close handshake
    and the reconnect then run as before).

    Taken at a frame boundary (picows' buffer empty: ``_Listener.take_at_boundary``),
    so the walk starts at a frame header.
    """

    def __init__(self, transport, listener: _Listener, raw) -> None:
        self.tcp_transport = transport.underlying_transport
        super().__init__(self.tcp_transport.get_extra_info("socket").fileno(), raw, raw.limit)
        self.ws = transport
        self.listener = listener
        self.protocol = self.tcp_transport.get_protocol()
        self.skip = 0  # bytes of the current frame's payload still to come (walk)
        self.head = b""  # an incomplete frame header (or control frame) carried over
        self.pongs = 0  # pings answered from here

    def replay(self, data: bytes, recv_ns: int) -> None:
        """Into picows' own buffer, as the transport would have read it."""
        listener, protocol = self.listener, self.protocol
        listener.recv_ns = recv_ns
        try:
            off, n = 0, len(data)
            while off < n:
                buf = protocol.get_buffer(-1)  # valid until buffer_updated: never kept
                k = min(len(buf), n - off)
                buf[:k] = data[off:off + k] if off or k < n else data
                protocol.buffer_updated(k)
                off += k
        finally:
            listener.recv_ns = 0

    def attention(self, new: bytes) -> bool:
        """Walk the frame headers of ``new``: pings answered now, True at a close."""
        buf = new
        if self.head:
            buf = self.head + buf
            self.head = b""
        n = len(buf)
        pos, head_at, controls = walk_frames(buf, self.skip)
        if head_at >= 0:
            self.head = buf[head_at:]
            pos = n
        urgent = False
        for opcode, start, end in controls:
            if opcode == 0x9:
                self.ws.send_pong(buf[start:end])
                self.listener.answered += 1
                self.pongs += 1
            elif opcode == 0x8:
                urgent = True
        self.skip = pos - n
        return urgent

    def pause(self) -> None:
        self.tcp_transport.pause_reading()

    def resume(self) -> None:
        if not self.ws.is_disconnected and not self.tcp_transport.is_closing():
            self.tcp_transport.resume_reading()


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
        self._sink: WsSink | None = None  # while the FastReader reads the socket

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
            if self._sink is not None:  # back to picows: it reads the close handshake's answer
                sink, self._sink = self._sink, None
                sink.hand_back()
            self._retire()
            transport.send_close(1000)
            try:
                await asyncio.wait_for(transport.wait_disconnected(), 1.0)
            except asyncio.TimeoutError:
                transport.disconnect(graceful=False)

    def drop_connection(self) -> None:
        if self._transport is not None:
            self._release()
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
                enable_auto_pong=False, use_aiofastnet=False, **extra,
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
        # Plain TCP: the FastReader takes the socket at the first frame ending picows'
        # buffer (clients/reader.py); TLS bytes must go through the SSL transport.
        listener.take_at_boundary = self.reader is not None and self.ssl_context is None

    def take(self) -> None:
        """From now on the FastReader reads this connection (called by the listener)."""
        listener, transport = self._listener, self._transport
        assert listener is not None and transport is not None and self.reader is not None
        listener.take_at_boundary = False
        if not transport.is_disconnected:
            sink = WsSink(transport, listener, self.on_raw)
            if self.reader.take(sink):
                self._sink = sink

    def _release(self) -> None:
        """The FastReader lets go (pending frames parsed) before the socket closes."""
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.release()

    def _retire(self) -> None:
        if self._sock is not None and self.tcp is not None:
            self.tcp.retire(self._sock)
            self._sock = None

    def _on_lost(self, listener: _Listener) -> None:
        if listener is self._listener:
            self._release()
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
