"""What every handler shares: settings, the hub, the counters, open WebSockets, the TCP listener."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .config import ServerConfig
from .hub import Hub
from .metrics import Metrics

__all__ = ["HEADERS", "STATE", "ServerState"]


@dataclass(frozen=True, slots=True)
class ServerState:
    config: ServerConfig
    hub: Hub
    metrics: Metrics
    #: Open WebSocket connections, closed with 1001 on shutdown (set is mutable on purpose).
    websockets: set = field(default_factory=set)
    #: The plain-TCP listener (servers/tcp.py) when "tcp" is mounted, else None.
    tcp: object = None


STATE = web.AppKey("duplexbench_state", ServerState)
#: request[HEADERS]: the headers every answer to this request carries (no-cache, epoch, CORS).
#: A typed key where aiohttp has them (3.13+: a plain string key warns).
HEADERS = (web.RequestKey("duplexbench_headers", dict) if hasattr(web, "RequestKey")
           else "duplexbench_headers")
