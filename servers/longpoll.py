"""Long polling (RFC 6202 §2): ``GET /poll?topic=T[&cursor=N][&timeout=S][&max=K]``.

A small state machine per request, no per-connection queue (the hub's
retention is the queue, and the cursor is the client's position in it):

    READ   -> messages after the cursor?  yes: ANSWER 200 [batch]
                                          no:  HOLD
    HOLD   -> woken by a publish, the timeout or shutdown -> READ once more
              -> 200 [batch] or 204

No cursor means "from now on" (the topic's current last seq). A cursor older
than the retention window gets 410 ``{"error","epoch","oldest_seq","cursor"}``;
one of another epoch (the server restarted) 410 with the reset object; one
ahead of the topic 400. Every answer carries ``Cache-Control: no-cache`` (§5.6)
and ``Duplexbench-Epoch``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from duplexbench.contract.http import DEFAULT_POLL_TIMEOUT_S

from .fanout import burn
from .params import BadRequest, query_cursor, query_seconds, query_topic, query_uint
from .state import HEADERS, STATE

__all__ = ["DEFAULT_MAX_BATCH", "handle_poll"]

DEFAULT_MAX_BATCH = 1000


async def handle_poll(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    config, hub, metrics = state.config, state.hub, state.metrics
    metrics.http_requests["longpoll"] += 1
    topic = query_topic(request)
    cursor = query_cursor(request)
    timeout = min(query_seconds(request, "timeout", DEFAULT_POLL_TIMEOUT_S), config.poll_timeout_cap_s)
    limit = query_uint(request, "max")
    if limit is None:
        limit = min(DEFAULT_MAX_BATCH, config.max_batch)
    elif limit == 0:
        raise BadRequest(f"bad max 0: expected 1 or more (values above {config.max_batch} are capped)")
    limit = min(limit, config.max_batch)
    headers = request[HEADERS]

    if hub.remote:
        await hub.prepare(topic, cursor)  # the worker's cache in step with the broker
    cursor, reset = hub.position(topic, cursor)
    if reset is not None:
        # Another instance's cursor: say so; the client continues from the reset's cursor.
        body = reset[:-1] + b',"error":"cursor from another server instance","oldest_seq":%d}' % (cursor + 1)
        return web.Response(status=410, body=body, content_type="application/json", headers=headers)
    metrics.connections_open["longpoll"] += 1
    try:
        body, count, first_at = hub.read_batch(topic, cursor, limit)
        if not count and timeout > 0 and not hub.closing:
            await hub.wait(topic, timeout)
            # Every poll held on this topic gets the same encoded answer (cached per publish).
            body, count, first_at = hub.read_batch(topic, cursor, limit)
        if not count:
            return web.Response(status=204, headers=headers)
        delay_s = config.inject.delay_ms / 1000
        if delay_s:
            # One answer per poll: wait until its first message is due.
            wait = first_at + delay_s - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
        if hub.cpu_ns:
            burn(hub.cpu_ns * count)  # DUPLEXBENCH_INJECT_CPU_US: per delivered message
        metrics.delivered["longpoll"] += count
        metrics.bytes_written["longpoll"] += len(body)
        return web.Response(body=body, content_type="application/json", headers=headers)
    finally:
        metrics.connections_open["longpoll"] -= 1
