"""The aiohttp application: routes for the chosen transports, error mapping, shutdown.

One app serves every transport so they share the hub, the event loop and the
settings; ``--transport`` only decides which routes are mounted (``/publish``,
``/healthz`` and ``/metrics`` always are) and whether the plain-TCP listener
(servers/tcp.py) starts beside the HTTP one, on the same hub. The one middleware applies the
Origin policy (CORS, preflight, 403) to ``/poll``, ``/stream``, ``/publish`` and
``/ws``, and maps every error a client can cause to a 4xx JSON body; anything
else is a bug, logged and answered 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

from aiohttp import web

from duplexbench.contract import EPOCH_HEADER
from duplexbench.contract.origin import (
    CORS_PATHS,
    PREFLIGHT_HEADERS,
    cors_headers,
    origin_decision,
)

from .config import ServerConfig
from .hub import CursorAhead, CursorGone, Hub, TooManyTopics
from .longpoll import handle_poll
from .metrics import Metrics
from .pages import add_page_routes
from .params import BadRequest, error_response, json_response
from .publish import handle_publish
from .retention import Unavailable
from .state import HEADERS, STATE, ServerState
from .stream import handle_stream
from .tcp import TcpListener
from .websocket import CLOSE_GOING_AWAY, handle_ws

__all__ = ["TCP_SSL", "make_app"]

log = logging.getLogger("servers")


def _scheme(request: web.Request, config) -> str:
    """The scheme the page used: the listener's, or (--trust-forwarded-proto) the TLS
    front's X-Forwarded-Proto, so a page served over https by nginx is same-origin."""
    if config.trust_forwarded_proto:
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            return forwarded
    return request.scheme


@web.middleware
async def _policy(request: web.Request, handler) -> web.StreamResponse:
    state = request.app[STATE]
    # Every answer of this request carries these (handlers add them to theirs).
    headers = request[HEADERS] = {"Cache-Control": "no-cache", EPOCH_HEADER: state.hub.epoch}
    if request.path in CORS_PATHS:
        origin = request.headers.get("Origin")
        if origin is not None:
            # The Host header itself: aiohttp's request.host falls back to a (blocking)
            # getfqdn() when a request has none.
            decision = origin_decision(origin, _scheme(request, state.config),
                                       request.headers.get("Host", ""), state.config.allow_origins)
            if decision == "deny":
                state.metrics.http_requests["other"] += 1
                return error_response(403, "origin not allowed", headers, origin=origin[:200])
            if decision == "cross":
                headers.update(cors_headers(origin))
        unrouted = request.match_info.http_exception
        # OPTIONS on a mounted path is a preflight (the router itself would say 405).
        if request.method == "OPTIONS" and (unrouted is None or unrouted.status == 405):
            state.metrics.http_requests["other"] += 1
            return web.Response(status=204, headers={**headers, **PREFLIGHT_HEADERS})
    try:
        return await handler(request)
    except BadRequest as exc:
        return error_response(exc.status, exc.reason, {**headers, **exc.headers}, **exc.extra)
    except CursorGone as exc:
        body = exc.as_json()
        if not exc.epoch:  # raised by the retention ring, which knows no epoch
            body["epoch"] = state.hub.epoch
            body["cursor"] = f"{state.hub.epoch}-{exc.oldest_seq - 1}"
        return json_response(410, body, headers)
    except CursorAhead as exc:
        return error_response(400, str(exc), headers, last_seq=exc.last_seq)
    except (TooManyTopics, Unavailable) as exc:
        return error_response(503, str(exc), headers)
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
        return error_response(exc.status, reason, {**request[HEADERS], **headers})
    except asyncio.CancelledError:
        raise
    except ConnectionError:
        # The client's connection went away mid-answer: nothing to log, nothing to send
        # (aiohttp drops this answer quietly on the dead connection).
        return error_response(400, "client connection lost", request[HEADERS])
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path_qs[:200])
        return error_response(500, "internal server error (logged)", request[HEADERS])


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.metrics.http_requests["other"] += 1
    body = {
        "status": "ok",
        "transports": list(state.config.transports),
        "inject": state.config.inject.as_json(),
        "pid": os.getpid(),
        "epoch": state.hub.epoch,
        # The plain-TCP listener's port (clients connect to the host of this URL), null
        # when tcp is not mounted; it speaks TLS when this listener does.
        "tcp_port": state.tcp.port if state.tcp is not None else None,
    }
    config = state.config
    if config.brokered:  # absent: one process, no broker (today's server, byte for byte)
        body.update(workers=config.workers, broker=config.broker, worker=config.worker_index)
    return web.Response(text=json.dumps(body), content_type="application/json",
                        headers=request[HEADERS])


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.metrics.http_requests["other"] += 1
    return web.Response(text=state.metrics.render(), content_type="text/plain",
                        charset="utf-8", headers=request[HEADERS])


async def _on_startup(app: web.Application) -> None:
    state = app[STATE]
    hub = state.hub
    if hub.remote:
        await hub.connect()  # before listening: the epoch comes from the broker
    hub.start()
    state.metrics.gc.install()
    if state.tcp is not None:
        config = state.config
        try:
            # Workers (--workers) each listen on a port of their own: /healthz names it.
            await state.tcp.start(config.host, config.tcp_port, app[TCP_SSL])
        except OSError as exc:
            raise OSError(exc.errno, f"--tcp-port {config.tcp_port}: {exc.strerror}") from None


async def _on_cleanup(app: web.Application) -> None:
    app[STATE].metrics.gc.uninstall()
    hub = app[STATE].hub
    if hub.remote:
        await hub.disconnect()


async def _on_shutdown(app: web.Application) -> None:
    """Runs after the listener stopped: a graceful restart. Stop reading publishes
    and holding polls, flush every subscriber's queue (bounded), then end streams
    and close WebSockets 1001: nothing acknowledged before the signal is lost."""
    state = app[STATE]
    if state.tcp is not None:
        state.tcp.stop_listening()
    state.hub.begin_shutdown()
    await state.hub.flush(state.config.shutdown_timeout_s)
    state.hub.shutdown()
    closes = [c.close(CLOSE_GOING_AWAY, "server shutdown") for c in list(state.websockets)]
    if closes:
        await asyncio.gather(*closes, return_exceptions=True)
    if state.tcp is not None:
        await state.tcp.close_all(state.config.shutdown_timeout_s)


#: The TLS context of the plain-TCP listener (None: plain TCP), as the HTTP site's.
TCP_SSL = web.AppKey("duplexbench_tcp_ssl", object)


def make_app(config: ServerConfig, ssl_context=None) -> web.Application:
    """The app; ``ssl_context`` (the HTTP site's, when TLS is on) is the TCP listener's too."""
    metrics = Metrics()
    options = dict(
        retention=config.retention,
        retention_bytes=config.retention_bytes,
        max_topics=config.max_topics,
        queue_limit=config.queue_limit,
        pad_bytes=config.inject.pad_bytes,
        slow_grace_s=config.slow_grace_s,
        delay_s=config.inject.delay_ms / 1000,
        heartbeat_s=config.heartbeat_s,
        cpu_us=config.inject.cpu_us,
    )
    if config.brokered:
        from .broker import BrokerHub  # imports redis: only where it is used

        hub: Hub = BrokerHub(metrics, redis_url=config.redis_url, worker=config.worker_index,
                             workers=config.workers, **options)
    else:
        hub = Hub(metrics, **options)
    app = web.Application(middlewares=[_policy], client_max_size=config.max_payload)
    tcp = TcpListener(hub, metrics, config.max_payload) if "tcp" in config.transports else None
    app[STATE] = ServerState(config, hub, metrics, tcp=tcp)
    app[TCP_SSL] = ssl_context
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
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app
