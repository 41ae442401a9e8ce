"""WebSocket (RFC 6455): ``GET /ws?topic=T[&cursor=N][&subscribe=0]``, full duplex on one socket.

Before the upgrade (plain HTTP answers): bad params 400, cursor errors 400/410,
``Sec-WebSocket-Version`` other than 13 -> 426 with ``Sec-WebSocket-Version:
13``, a missing or bad ``Sec-WebSocket-Key`` -> 400; the app's Origin policy
(403) runs before all of them. aiohttp's ``WebSocketResponse`` then does the
handshake (the 101 carries ``Duplexbench-Epoch``), answers Ping with Pong,
pings every ``--ping-interval`` and drops a peer whose Pong is later than
``--ping-timeout``, and closes 1009 / 1007 for over-size frames and invalid
UTF-8. A client's Close is answered with a Close of the same code (1000 when it
had none). Compression is off: every transport carries the same bytes. After a
restart (a cursor of another epoch) the first text frame is the reset object.

Server -> client: one text frame per envelope, the hub's bytes sent as they
are (``send_frame``, no re-encoding). Client -> server: a text frame
``{"data":"...","ts":NS}`` publishes to the socket's topic; anything else
closes with 1008 (1009 when ``data`` is over ``--max-payload``).

The connection's life (close codes are the only exits):

    OPEN -> client Close / gone                 -> CLOSED
         -> bad frame                           -> 1008 / 1007 / 1009
         -> queue overflow (slow consumer)      -> 1008 "slow consumer" (counted)
         -> server shutdown                     -> 1001
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time

from aiohttp import WSMsgType, web

from duplexbench.contract import ContractError
from duplexbench.contract.websocket import (
    CLOSE_GOING_AWAY,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    decode_publish,
    frame_header_size,
)

from .hub import Hub, HubError, SubState, Subscription
from .inject import paced
from .metrics import Metrics
from .params import BadRequest, query_cursor, query_topic
from .state import HEADERS, STATE

__all__ = ["PUBLISH_FRAME_OVERHEAD", "WebSocketConnection", "handle_ws", "valid_key"]

log = logging.getLogger(__name__)

#: A publish frame may exceed --max-payload by this much: the JSON around the data.
PUBLISH_FRAME_OVERHEAD = 256
#: How long a close handshake may take before the socket is aborted.
CLOSE_TIMEOUT_S = 2.0


def valid_key(key: str | None) -> bool:
    """Sec-WebSocket-Key: base64 of 16 bytes (RFC 6455 §4.1)."""
    if not key:
        return False
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


class WebSocketConnection:
    """One socket: the handler reads (publishes), a pump task writes (deliveries)."""

    __slots__ = ("ws", "request", "_closing", "close_task")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self._closing = False
        self.close_task: asyncio.Task | None = None

    def drop_slow(self, pump: asyncio.Task) -> None:
        """Queue overflow: close 1008 once the pump has stopped writing."""
        if self._closing:
            return
        self._closing = True
        self.close_task = asyncio.get_running_loop().create_task(self._drop_slow(pump))

    async def _drop_slow(self, pump: asyncio.Task) -> None:
        # The pump is never cancelled while it waits for the socket to drain: aiohttp
        # shares one drain waiter per connection, and cancelling it would make the
        # Close frame's own drain fail. It stops by itself (next_batch -> None) once the
        # socket takes its current frame; a peer that reads nothing loses the socket.
        done, _ = await asyncio.wait((pump,), timeout=CLOSE_TIMEOUT_S)
        if not done:
            self.abort()
            return
        await self.close(CLOSE_POLICY_VIOLATION, "slow consumer")

    def abort(self) -> None:
        if self.request.transport is not None:
            self.request.transport.abort()

    async def close(self, code: int, reason: str, drain: bool = True) -> None:
        self._closing = True
        try:
            await asyncio.wait_for(
                self.ws.close(code=code, message=reason.encode()[:123], drain=drain),
                CLOSE_TIMEOUT_S,
            )
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            # A peer that does not read cannot take a Close frame: drop the socket.
            self.abort()


async def handle_ws(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    config, hub, metrics = state.config, state.hub, state.metrics
    metrics.http_requests["websocket"] += 1
    topic = query_topic(request)
    cursor = query_cursor(request)
    subscribe = request.query.get("subscribe", "1")
    if subscribe not in ("0", "1"):
        raise BadRequest(f"bad subscribe {subscribe[:20]!r}: expected 0 or 1")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise BadRequest("expected a WebSocket upgrade (Upgrade: websocket)")
    if request.headers.get("Sec-WebSocket-Version", "") != "13":
        raise BadRequest(
            "unsupported Sec-WebSocket-Version: this server speaks 13 (RFC 6455)",
            status=426, headers={"Sec-WebSocket-Version": "13"},
        )
    if not valid_key(request.headers.get("Sec-WebSocket-Key")):
        raise BadRequest("missing or invalid Sec-WebSocket-Key")
    subscription, reset = None, None
    if subscribe == "1":
        start, reset = hub.position(topic, cursor)
        subscription = hub.subscribe(topic, start)

    ws = web.WebSocketResponse(
        heartbeat=config.ping_interval_s,
        max_msg_size=config.max_payload + PUBLISH_FRAME_OVERHEAD,
        compress=False,
        timeout=CLOSE_TIMEOUT_S,
        autoclose=False,  # we answer a Close ourselves, echoing its code
    )
    for name, value in request[HEADERS].items():
        if name != "Cache-Control":
            ws.headers[name] = value  # the epoch (and CORS) on the 101
    # aiohttp waits heartbeat/2 for the Pong; honour --ping-timeout instead.
    if hasattr(ws, "_pong_heartbeat"):
        ws._pong_heartbeat = config.ping_timeout_s
    connection = WebSocketConnection(ws, request)
    metrics.connections_open["websocket"] += 1
    pump: asyncio.Task | None = None
    try:
        try:
            await ws.prepare(request)
        except (ConnectionError, web.HTTPException) as exc:
            # aiohttp's own handshake checks (bad key...) still answer 400, not 500.
            if isinstance(exc, web.HTTPException):
                raise BadRequest(exc.text or exc.reason) from None
            return ws
        state.websockets.add(connection)
        if hub.closing:
            await connection.close(CLOSE_GOING_AWAY, "server shutdown")
            return ws
        if subscription is not None:
            pump = asyncio.get_running_loop().create_task(
                _pump(ws, subscription, config.inject.delay_ms / 1000, metrics, reset)
            )
            pump.add_done_callback(_retrieve)
            subscription.on_leave = lambda leave: _on_leave(leave, pump, connection)
        await _read(ws, connection, topic, config.max_payload, hub)
        return ws
    finally:
        if pump is not None and not pump.done():
            pump.cancel()
        if subscription is not None:
            if subscription.state is SubState.OVERFLOWED:
                metrics.slow_consumer_drops["websocket"] += 1
            hub.unsubscribe(subscription)
        if connection.close_task is not None and not connection.close_task.done():
            await asyncio.wait((connection.close_task,))
        state.websockets.discard(connection)
        metrics.connections_open["websocket"] -= 1


def _retrieve(task: asyncio.Task) -> None:
    # A pump ends with ConnectionResetError when its client vanishes: expected, not logged.
    if not task.cancelled() and task.exception() is not None:
        if not isinstance(task.exception(), ConnectionError):
            log.warning("websocket pump ended by %r", task.exception())


def _on_leave(leave: SubState, pump: asyncio.Task, connection: WebSocketConnection) -> None:
    # CLOSED needs nothing here: shutdown closes every socket with 1001, and an
    # unsubscribe happens after the socket closed.
    if leave is SubState.OVERFLOWED:
        connection.drop_slow(pump)


async def _read(ws: web.WebSocketResponse, connection: WebSocketConnection,
                topic: str, max_payload: int, hub: Hub) -> None:
    """Client frames are publishes; the loop ends when the socket closes."""
    while True:
        msg = await ws.receive()
        if msg.type is WSMsgType.CLOSE:
            # Echo the client's code (0 = its Close had none: answer 1000).
            await connection.close(msg.data or CLOSE_NORMAL, "", drain=False)
            return
        if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return  # ERROR: aiohttp has already closed with 1009 / 1007 / 1002
        if msg.type is WSMsgType.TEXT:
            try:
                data, ts = decode_publish(msg.data)
            except ContractError as exc:
                await connection.close(CLOSE_POLICY_VIOLATION, str(exc))
                return
            # UTF-8 takes at most 4 bytes a character: most frames skip the encode.
            if len(data) * 4 > max_payload and len(data.encode()) > max_payload:
                await connection.close(CLOSE_MESSAGE_TOO_BIG, f"data exceeds {max_payload} bytes")
                return
            try:
                hub.publish(topic, data, ts if ts is not None else time.time_ns())
            except HubError as exc:  # e.g. too many topics: refused, not a crash
                await connection.close(CLOSE_POLICY_VIOLATION, str(exc))
                return
        elif msg.type is WSMsgType.BINARY:
            await connection.close(CLOSE_POLICY_VIOLATION, "binary frames are not publishes")
            return


async def _pump(ws: web.WebSocketResponse, subscription: Subscription,
                delay_s: float, metrics: Metrics, reset: bytes | None) -> None:
    send_frame = ws.send_frame
    count = size = 0
    if reset is not None:
        await send_frame(reset, WSMsgType.TEXT)
    try:
        while True:
            batch = await subscription.next_batch()
            if batch is None:
                return
            runs = paced(batch, delay_s) if delay_s else _once(batch)
            async for run in runs:
                for message in run:
                    if subscription.state is not SubState.OPEN:
                        return  # dropped: not one frame more
                    body = message.body
                    await send_frame(body, WSMsgType.TEXT)
                    count += 1
                    size += len(body) + frame_header_size(len(body), False)
                # Counters per run, not per frame: cheap, and /metrics stays current.
                metrics.delivered["websocket"] += count
                metrics.bytes_written["websocket"] += size
                count = size = 0
    finally:
        metrics.delivered["websocket"] += count
        metrics.bytes_written["websocket"] += size


async def _once(batch):
    yield batch
