"""The HTTP surface every duplexbench server offers (see servers/README.md)."""

from __future__ import annotations

import enum

__all__ = [
    "ACCEPT_NDJSON",
    "ACCEPT_SSE",
    "DEFAULT_POLL_TIMEOUT_S",
    "MAX_POLL_TIMEOUT_S",
    "PATH_HEALTH",
    "PATH_METRICS",
    "PATH_POLL",
    "PATH_PUBLISH",
    "PATH_STREAM",
    "PATH_WS",
    "Transport",
]

PATH_PUBLISH = "/publish"  # POST ?topic=T[&ts=NS]; body = payload; 200 {"seq": N}
PATH_POLL = "/poll"  # GET ?topic=T[&cursor=N][&timeout=S][&max=K]
PATH_STREAM = "/stream"  # GET ?topic=T[&cursor=N]; Accept picks the framing
PATH_WS = "/ws"  # GET ?topic=T[&cursor=N][&subscribe=0]; RFC 6455 upgrade
PATH_HEALTH = "/healthz"
PATH_METRICS = "/metrics"

ACCEPT_SSE = "text/event-stream"
ACCEPT_NDJSON = "application/x-ndjson"

DEFAULT_POLL_TIMEOUT_S = 30.0
MAX_POLL_TIMEOUT_S = 120.0


class Transport(str, enum.Enum):
    """What a load generator measures; ``sse`` and ``ndjson`` share /stream; ``tcp`` is a
    listener of its own (plain TCP lines, :mod:`.tcp`), its port in /healthz ``tcp_port``."""

    LONGPOLL = "longpoll"
    SSE = "sse"
    NDJSON = "ndjson"
    WEBSOCKET = "websocket"
    TCP = "tcp"

    @property
    def server_mount(self) -> str:
        """The server ``--transport`` that serves this client transport."""
        return "stream" if self in (Transport.SSE, Transport.NDJSON) else self.value
