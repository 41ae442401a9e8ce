"""What a scenario's tables hold: the server's options, long polling's, the emulated network.

The vocabularies (transports, patterns, engines...) are here too: the loader
checks values against them and the runner iterates them in this order.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ARRIVALS",
    "ENGINES",
    "HTTP_VERSIONS",
    "NETWORK_MODES",
    "PATTERNS",
    "STACKS",
    "TRANSPORTS",
    "UPSTREAMS",
    "LongPollOptions",
    "NetworkOptions",
    "ServerOptions",
]

#: Order matters: it is the order transports run in and appear in tables.
TRANSPORTS = ("longpoll", "sse", "ndjson", "websocket")
PATTERNS = ("fanout", "echo", "chat")
UPSTREAMS = ("post", "transport")
ARRIVALS = ("uniform", "poisson")
NETWORK_MODES = ("proxy", "netem")
#: Load generators (runner.loadgen_command); a scenario may sweep them (``engine = [...]``).
ENGINES = ("native", "locust", "browser")
#: HTTP versions a point can speak (docs/http2.md); a scenario sweeps them (``http = [...]``).
HTTP_VERSIONS = ("1.1", "2")
#: Server implementations: the aiohttp servers and the Node reference (servers/node/).
STACKS = ("python", "node")

# ---------------------------------------------------------------------------
# The dataclasses


@dataclass(frozen=True)
class ServerOptions:
    """Options passed to ``python -m servers`` (see DESIGN.md "Servers")."""

    queue_limit: int = 1000        # per-connection queue before a slow consumer is dropped
    heartbeat_s: float = 15.0      # SSE comment / NDJSON blank line interval
    ping_interval_s: float = 20.0  # WebSocket ping interval
    retention: int = 10000         # messages kept per topic for resume
    uvloop: bool = True
    max_payload: int = 1024 * 1024  # the server's --max-payload (bytes per publish)
    tls: tuple[bool, ...] = (False,)  # https/wss with a per-run certificate; a sweep
    stack: tuple[str, ...] = ("python",)  # which server implementation; a sweep

    def to_args(self) -> list[str]:
        """Command-line flags for ``python -m servers``."""
        args = [
            "--queue-limit", str(self.queue_limit),
            "--heartbeat", _fmt(self.heartbeat_s),
            "--ping-interval", _fmt(self.ping_interval_s),
            "--retention", str(self.retention),
        ]
        if self.max_payload != ServerOptions.max_payload:  # the server's own default otherwise
            args += ["--max-payload", str(self.max_payload)]
        if self.uvloop:
            args.append("--uvloop")
        return args


@dataclass(frozen=True)
class LongPollOptions:
    """Long-polling client options; ``keepalive`` is a sweep (False = Connection: close)."""

    keepalive: tuple[bool, ...] = (True,)
    max_batch: int = 1000


@dataclass(frozen=True)
class NetworkOptions:
    """An emulated network between subscribers and server (duplexbench/netem)."""

    delay_ms: tuple[float, ...] = (0.0,)  # one-way delay; a sweep
    jitter_ms: float = 0.0
    bandwidth_kbps: float = 0.0           # 0 = unlimited
    loss_pct: float = 0.0
    mode: str = "proxy"                   # proxy | netem


def _fmt(number: float) -> str:
    """A number as a scenario or label writes it (``200``, ``0.5``)."""
    return f"{number:g}"
