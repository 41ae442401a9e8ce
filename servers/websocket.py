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

Server -> client: one text frame per envelope, framed once per message by the
hub and written straight to every ready socket (:mod:`.fanout`). Client -> server: a text frame
``{"data":"...","ts":NS}`` publishes to the socket's topic; anything else
closes with 1008 (1009 when ``data`` is over ``--max-payload``).

The connection's life (close codes are the only exits):

    OPEN -> client Close / gone                 -> CLOSED
         -> bad frame                           -> 1008 / 1007 / 1009
         -> congested past --slow-grace        -> 1008 "slow consumer" (counted)
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
    OP_TEXT,
    decode_publish,
    encode_frame,
)

from .fanout import WEBSOCKET, Sink, SinkState
from .hub import Hub, HubError
from .params import BadRequest, query_cursor, query_topic
from .retention import Unavailable
from .state import HEADERS, STATE

__all__ = ["PUBLISH_FRAME_OVERHEAD", "WebSocketConnection", "handle_ws", "valid_key"]

log = logging.getLogger(__name__)

#: A publish frame may exceed --max-payload by this much: the JSON around the data.
PUBLISH_FRAME_OVERHEAD = 256
#: Close codes a peer may send (RFC 6455 §7.4.1 and the IANA registry), echoed as they are.
_ECHOABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
CLOSE_PROTOCOL_ERROR = 1002
#: RFC 6455 7.4.1 (IANA): the server cannot take it now (its broker is unreachable).
CLOSE_TRY_AGAIN_LATER = 1013
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


class _WebSocketResponse(web.WebSocketResponse):
    """aiohttp's response, told to stop the hub's direct writes before ANY Close.

    aiohttp closes by itself on protocol errors (1002, 1007, 1009...); the hub
    writes frames straight to the transport, so the sink must go before the
    Close frame, or data frames could follow it."""

    before_close = None

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if self.before_close is not None:
            self.before_close()
        return await super().close(code=code, message=message, drain=drain)


class WebSocketConnection:
    """One socket: the handler reads (publishes); the hub writes deliveries (its sink)."""

    __slots__ = ("ws", "request", "hub", "sink", "_closing", "close_task")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, hub: Hub) -> None:
        self.ws = ws
        self.request = request
        self.hub = hub
        self.sink: Sink | None = None
        self._closing = False
        self.close_task: asyncio.Task | None = None

    def on_leave(self, left: SinkState) -> None:
        # CLOSED needs nothing here: shutdown closes every socket with 1001, and an
        # unsubscribe happens when the socket closes anyway.
        if left is SinkState.OVERFLOWED and not self._closing:
            self._closing = True
            self.close_task = asyncio.get_running_loop().create_task(
                self.close(CLOSE_POLICY_VIOLATION, "slow consumer"))

    def stop_deliveries(self) -> None:
        if self.sink is not None:
            self.hub.unsubscribe(self.sink)

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
    if hub.remote and subscribe == "1":
        await hub.prepare(topic, cursor)  # the worker's cache in step with the broker
    start, reset = hub.position(topic, cursor) if subscribe == "1" else (0, None)
    if subscribe == "1":
        hub.reserve(topic)  # too many topics: 503 now, not after the 101

    ws = _WebSocketResponse(
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
    connection = WebSocketConnection(ws, request, hub)
    metrics.connections_open["websocket"] += 1
    try:
        try:
            await ws.prepare(request)
        except (ConnectionError, web.HTTPException) as exc:
            # aiohttp's own handshake checks (Connection header...) still answer 400, not 500.
            if isinstance(exc, web.HTTPException):
                raise BadRequest(exc.text or exc.reason) from None
            return ws
        state.websockets.add(connection)
        if hub.closing:
            await connection.close(CLOSE_GOING_AWAY, "server shutdown")
            return ws
        if subscribe == "1":
            first = encode_frame(OP_TEXT, reset) if reset is not None else b""
            try:
                connection.sink = hub.subscribe(topic, start, WEBSOCKET, request.protocol, first)
            except HubError as exc:  # retention moved during the handshake: resume again
                await connection.close(CLOSE_POLICY_VIOLATION, str(exc))
                return ws
            connection.sink.on_leave = connection.on_leave
            ws.before_close = connection.stop_deliveries
        await _read(ws, connection, topic, config.max_payload, hub)
        return ws
    finally:
        if connection.sink is not None:
            hub.unsubscribe(connection.sink)
        state.websockets.discard(connection)
        metrics.connections_open["websocket"] -= 1
        if connection.close_task is not None and not connection.close_task.done():
            await asyncio.wait((connection.close_task,))


async def _read(ws: web.WebSocketResponse, connection: WebSocketConnection,
                topic: str, max_payload: int, hub: Hub) -> None:
    """Client frames are publishes; the loop ends when the socket closes.

    After a publish that left a subscriber of the topic congested, the loop
    waits for room before reading the next frame: the burst rule."""
    while True:
        msg = await ws.receive()
        if msg.type is WSMsgType.CLOSE:
            # Echo the client's code (0 = its Close had none: answer 1000); a code no
            # endpoint may send (1005, 1006, 1015, unassigned) is a protocol error.
            code = msg.data or CLOSE_NORMAL
            if code not in _ECHOABLE and not 3000 <= code <= 4999:
                await connection.close(CLOSE_PROTOCOL_ERROR, "invalid close code", drain=False)
            else:
                await connection.close(code, "", drain=False)
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
            if hub.closing:
                continue  # read after the shutdown began: not acknowledged, not published
            try:
                if hub.remote:  # the next frame is read once Redis holds this one (order)
                    await hub.publish_remote(topic, data, ts if ts is not None else time.time_ns())
                else:
                    hub.publish(topic, data, ts if ts is not None else time.time_ns())
            except Unavailable as exc:  # the broker is unreachable: try again later
                await connection.close(CLOSE_TRY_AGAIN_LATER, str(exc))
                return
            except HubError as exc:  # e.g. too many topics: refused, not a crash
                await connection.close(CLOSE_POLICY_VIOLATION, str(exc))
                return
            if hub.congested_topic(topic):
                await hub.wait_room(topic)
        elif msg.type is WSMsgType.BINARY:
            await connection.close(CLOSE_POLICY_VIOLATION, "binary frames are not publishes")
            return
