"""HTTP streaming: ``GET /stream?topic=T[&cursor=N]``, SSE or chunked NDJSON by ``Accept``.

``Accept: text/event-stream`` gets Server-Sent Events: the preamble
``retry: 1000`` + ``id: E-N`` first (or ``event: reset`` after a restart), then
``id: E-SEQ`` / ``data: ENVELOPE`` per message, ``: hb`` when idle; a
reconnect's ``Last-Event-ID`` (which wins over ``?cursor``; empty = absent)
resumes after that cursor. Anything else gets ``application/x-ndjson``: one
envelope per line (the reset object as the first line after a restart), a
blank line when idle; ``?cursor=E-N`` resumes. Headers are sent at once.

Per connection: the hub fills a bounded :class:`~servers.hub.Subscription`
queue; this connection's own pump task drains it, one write per batch (so a
burst costs one write, an idle stream costs nothing but heartbeats). The
connection's life:

    STREAMING -> hub closes the subscription (shutdown)   -> ENDED (last chunk)
              -> queue overflow (slow consumer)           -> ENDED (counted)
              -> client gone (write fails / cancelled)    -> ENDED
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from duplexbench.contract.http import ACCEPT_SSE
from duplexbench.contract.ndjson import HEARTBEAT as NDJSON_HEARTBEAT
from duplexbench.contract.sse import HEARTBEAT as SSE_HEARTBEAT
from duplexbench.contract.sse import RETRY_MS, encode_event, encode_preamble, encode_reset_event

from .hub import SubState, Subscription
from .inject import paced
from .metrics import Metrics
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
    start, reset = hub.position(topic, request_cursor(request))
    subscription = hub.subscribe(topic, start)
    metrics.connections_open[label] += 1
    headers = request[HEADERS]
    headers["Content-Type"] = "text/event-stream" if sse else "application/x-ndjson"
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
        pump = asyncio.get_running_loop().create_task(
            _pump(response, subscription, sse, config.heartbeat_s,
                  config.inject.delay_ms / 1000, metrics, label, first, hub.epoch)
        )
        # Leaving OPEN (overflow, shutdown) wakes an idle pump; one stuck on a full
        # socket gets END_TIMEOUT_S, then loses the socket. (Cancelling it instead would
        # poison aiohttp's shared drain waiter, and the end of the stream with it.)
        subscription.on_leave = lambda _state: _abort_later(request, pump)
        try:
            await asyncio.wait((pump,))
        finally:
            if not pump.done():  # this handler was cancelled (client gone, hard stop)
                pump.cancel()
        if pump.cancelled() or pump.exception() is not None:
            if not pump.cancelled():
                _client_gone(pump.exception())
            return response
        await _end(request, response)
        return response
    finally:
        # Counted here: aborting a slow client's socket may cancel this handler.
        if subscription.state is SubState.OVERFLOWED:
            metrics.slow_consumer_drops[label] += 1
        hub.unsubscribe(subscription)
        metrics.connections_open[label] -= 1


async def _pump(
    response: web.StreamResponse, subscription: Subscription, sse: bool,
    heartbeat_s: float, delay_s: float, metrics: Metrics, label: str, first: bytes, epoch: str,
) -> None:
    write = response.write
    if first:
        await write(first)
    heartbeat = SSE_HEARTBEAT if sse else NDJSON_HEARTBEAT
    delivered, written = metrics.delivered, metrics.bytes_written
    while True:
        batch = await subscription.next_batch(heartbeat_s)
        if batch is None:
            return
        if not batch:
            await write(heartbeat)
            written[label] += len(heartbeat)
            continue
        runs = paced(batch, delay_s) if delay_s else _once(batch)
        async for run in runs:
            if subscription.state is not SubState.OPEN:
                return  # dropped while this batch waited: stop writing at once
            if sse:
                chunk = b"".join([encode_event(m.seq, m.body, epoch) for m in run])
            else:
                chunk = b"".join([m.body + b"\n" for m in run])
            await write(chunk)
            delivered[label] += len(run)
            written[label] += len(chunk)


def _abort_later(request: web.Request, pump: asyncio.Task) -> None:
    asyncio.get_running_loop().call_later(END_TIMEOUT_S, _abort_if_running, request, pump)


def _abort_if_running(request: web.Request, pump: asyncio.Task) -> None:
    if not pump.done() and request.transport is not None:
        request.transport.abort()  # the pump's drain now fails: it ends


async def _once(batch):
    yield batch


async def _end(request: web.Request, response: web.StreamResponse) -> None:
    """Finish the chunked body; a client that does not read loses its socket instead."""
    try:
        await asyncio.wait_for(response.write_eof(), END_TIMEOUT_S)
    except (asyncio.TimeoutError, ConnectionError, RuntimeError):
        if request.transport is not None:
            request.transport.abort()


def _client_gone(exc: BaseException) -> None:
    if not isinstance(exc, ConnectionError):
        log.warning("stream ended by %r", exc)
