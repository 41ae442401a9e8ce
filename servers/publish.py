"""``POST /publish?topic=T[&ts=NS]``: the upstream path of the HTTP transports.

The body is the payload (UTF-8, at most ``--max-payload`` bytes); the answer is
``200 {"seq":N}``, sent once the topic has room (burst rule, servers/hub.py). Mounted with every transport, since long polling and
streaming need a second request to talk back and WebSocket echo tests use it too.
"""

from __future__ import annotations

from aiohttp import web

from .params import BadRequest, query_topic, query_uint
from .state import HEADERS, STATE

__all__ = ["handle_publish"]


async def handle_publish(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.metrics.http_requests["publish"] += 1
    topic = query_topic(request)
    ts = query_uint(request, "ts")  # decimal digits, 0 <= ts < 2**63
    limit = state.config.max_payload
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(
            f"payload of {request.content_length} bytes exceeds --max-payload {limit}", status=413
        )
    body = await _read_limited(request, limit)
    try:
        data = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    hub = state.hub
    if hub.closing:
        raise BadRequest("server shutting down: publish again after it restarts", status=503)
    if hub.remote:  # workers behind a broker: the 200 waits until Redis holds it
        seq = await hub.publish_remote(topic, data, ts)
    else:
        seq = hub.publish(topic, data, ts)
    if hub.congested_topic(topic):
        # The burst rule: a subscriber of the topic is above its high-water mark, so
        # this publisher waits (its 200, and with HTTP/1.1 its next request) for room.
        await hub.wait_room(topic)
    return web.Response(body=b'{"seq":%d}' % seq, content_type="application/json",
                        headers=request[HEADERS])


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing to buffer more than ``limit`` (chunked bodies have no length)."""
    chunks, size = [], 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"payload exceeds --max-payload {limit} bytes", status=413)
        chunks.append(chunk)
