"""The aiohttp application: routes for the chosen transports, error mapping, shutdown.

One app serves every transport so they share the hub, the event loop and the
settings; ``--transport`` only decides which routes are mounted (``/publish``,
``/healthz`` and ``/metrics`` always are). Every error a client can cause is
mapped to a 4xx JSON body here; anything else is a bug, logged and answered 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

from aiohttp import web

from .config import ServerConfig
from .hub import CursorAhead, CursorGone, Hub, TooManyTopics
from .longpoll import handle_poll
from .metrics import Metrics
from .pages import add_page_routes
from .params import BadRequest, error_response
from .publish import handle_publish
from .state import STATE, ServerState
from .stream import handle_stream
from .websocket import CLOSE_GOING_AWAY, handle_ws

__all__ = ["make_app"]

log = logging.getLogger("servers")


@web.middleware
async def _errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return error_response(exc.status, exc.reason, exc.headers, **exc.extra)
    except CursorGone as exc:
        return error_response(410, str(exc), oldest_seq=exc.oldest_seq)
    except CursorAhead as exc:
        return error_response(400, str(exc), last_seq=exc.last_seq)
    except TooManyTopics as exc:
        return error_response(503, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        request.app[STATE].metrics.http_requests["other"] += 1
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        reason = exc.reason
        if exc.status == 405:
            reason = f"method {request.method} not allowed on {request.path}; allowed: {headers.get('Allow', '')}"
        elif exc.status == 404:
            reason = f"no such path {request.path[:100]!r}"
        return error_response(exc.status, reason, headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path_qs[:200])
        return error_response(500, "internal server error (logged)")


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.metrics.http_requests["other"] += 1
    body = {
        "status": "ok",
        "transports": list(state.config.transports),
        "inject": state.config.inject.as_json(),
        "pid": os.getpid(),
    }
    return web.Response(text=json.dumps(body), content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.metrics.http_requests["other"] += 1
    return web.Response(text=state.metrics.render(), content_type="text/plain",
                        charset="utf-8", headers={"Cache-Control": "no-cache"})


async def _on_shutdown(app: web.Application) -> None:
    """Runs after the listener stopped: answer held polls, end streams, close sockets 1001."""
    state = app[STATE]
    state.hub.shutdown()
    closes = [c.close(CLOSE_GOING_AWAY, "server shutdown") for c in list(state.websockets)]
    if closes:
        await asyncio.gather(*closes, return_exceptions=True)


def make_app(config: ServerConfig) -> web.Application:
    metrics = Metrics()
    hub = Hub(
        metrics,
        retention=config.retention,
        retention_bytes=config.retention_bytes,
        max_topics=config.max_topics,
        queue_limit=config.queue_limit,
        pad_bytes=config.inject.pad_bytes,
    )
    app = web.Application(middlewares=[_errors], client_max_size=config.max_payload)
    app[STATE] = ServerState(config, hub, metrics)
    app.router.add_post("/publish", handle_publish)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    if "longpoll" in config.transports:
        app.router.add_get("/poll", handle_poll, allow_head=False)
    if "stream" in config.transports:
        app.router.add_get("/stream", handle_stream, allow_head=False)
    if "websocket" in config.transports:
        app.router.add_get("/ws", handle_ws, allow_head=False)
    add_page_routes(app)  # the browser client's pages (servers/pages.py)
    app.on_shutdown.append(_on_shutdown)
    return app
