"""HTTP streaming: ``GET /stream?topic=T[&cursor=N]``, SSE or chunked NDJSON by ``Accept``.

``Accept: text/event-stream`` gets Server-Sent Events: the preamble
``retry: 1000`` + ``id: E-N`` first (or ``event: reset`` after a restart), then
``id: E-SEQ`` / ``data: ENVELOPE`` per message, ``: hb`` when idle; a
reconnect's ``Last-Event-ID`` (which wins over ``?cursor``; empty = absent)
resumes after that cursor. Anything else gets ``application/x-ndjson``: one
envelope per line (the reset object as the first line after a restart), a
blank line when idle; ``?cursor=E-N`` resumes. Headers are sent at once.

Per connection: a :class:`~servers.fanout.Sink`. The hub writes each message's
framed bytes straight into the socket while it keeps up, and queues them (a
writer task drains the queue) while it is back-pressured; this handler only
waits for the sink to leave. The connection's life:

    STREAMING -> server shutdown (queue flushed first)    -> ENDED (last chunk)
              -> congested past --slow-grace (slow)       -> ENDED (counted)
              -> client gone (handler cancelled)          -> ENDED
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from duplexbench.contract.http import ACCEPT_SSE
from duplexbench.contract.sse import RETRY_MS, encode_preamble, encode_reset_event

from .fanout import NDJSON, NDJSON_CHUNKED, SSE, SSE_CHUNKED, SinkState, chunk
from .hub import HubError
from .params import query_topic, request_cursor
from .state import HEADERS, STATE

__all__ = ["RETRY_MS", "handle_stream"]

log = logging.getLogger(__name__)

#: How long ending a stream may take before the socket is aborted (slow clients).
END_TIMEOUT_S = 1.0


async def handle_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    config, hub, metrics = state.config, state.hub, state.metrics
    sse = ACCEPT_SSE in request.headers.get("Accept", "").lower()
    label = "sse" if sse else "ndjson"
    metrics.http_requests[label] += 1
    topic = query_topic(request)
    # CursorGone / CursorAhead answer before 200; another epoch's cursor is a reset.
    cursor = request_cursor(request)
    if hub.remote:
        await hub.prepare(topic, cursor)  # the worker's cache in step with the broker
    start, reset = hub.position(topic, cursor)
    hub.reserve(topic)  # too many topics: 503 now, not after the 200
    # A copy: an error answer after this point must not inherit the stream's Content-Type.
    headers = {**request[HEADERS],
               "Content-Type": "text/event-stream" if sse else "application/x-ndjson"}
    if config.accel_buffering_header:
        headers["X-Accel-Buffering"] = "no"  # tell proxies (nginx) not to buffer either
    response = web.StreamResponse(headers=headers)
    if sse:
        first = encode_reset_event(reset, hub.epoch, start) if reset else \
            encode_preamble(hub.epoch, start, RETRY_MS)
    else:
        first = reset + b"\n" if reset else b""
    try:
        await response.prepare(request)  # headers leave now, before any message
    except ConnectionError:
        return response  # the client left before its headers did
    if hub.closing:
        return response
    writer = response._payload_writer  # type: ignore[attr-defined]
    chunked = bool(getattr(writer, "chunked", False))
    if sse:
        kind = SSE_CHUNKED if chunked else SSE
    else:
        kind = NDJSON_CHUNKED if chunked else NDJSON
    try:
        sink = hub.subscribe(topic, start, kind, request.protocol,
                             chunk(first) if first and chunked else first)
    except HubError:
        # Retention moved while the headers left (the reconnect gets the 410), or the
        # topic limit was reached meanwhile: the stream ends at once.
        return response
    metrics.connections_open[label] += 1
    try:
        left = await sink.done  # shutdown (after the flush), slow consumer, or client gone
        if left is SinkState.OVERFLOWED:
            # A slow consumer cannot take even the last chunk: the socket goes (the
            # client resumes from its cursor); a keep-alive close would wait forever.
            _abort(request)
        elif request.transport is not None:
            await _end(request, response)
        return response
    finally:
        hub.unsubscribe(sink)
        metrics.connections_open[label] -= 1


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _end(request: web.Request, response: web.StreamResponse) -> None:
    """Finish the chunked body; a client that does not read loses its socket instead."""
    try:
        await asyncio.wait_for(response.write_eof(), END_TIMEOUT_S)
    except (asyncio.TimeoutError, ConnectionError, RuntimeError):
        _abort(request)
