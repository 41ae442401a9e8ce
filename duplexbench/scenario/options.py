"""What a scenario's tables hold: the server's options, long polling's, the emulated network.

The vocabularies (transports, patterns, engines...) are here too: the loader
checks values against them and the runner iterates them in this order.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ARRIVALS",
    "BROKERS",
    "MAX_WORKERS",
    "ENGINES",
    "ENGINE_TRANSPORTS",
    "HTTP_VERSIONS",
    "NETWORK_MODES",
    "PATTERNS",
    "STACKS",
    "TRANSPORTS",
    "UPSTREAMS",
    "WEB_TRANSPORTS",
    "LongPollOptions",
    "NetworkOptions",
    "ServerOptions",
]

#: The transports a browser can use: HTTP and WebSocket.
WEB_TRANSPORTS = ("longpoll", "sse", "ndjson", "websocket")
#: Order matters: it is the order transports run in and appear in tables. ``tcp`` (plain TCP
#: lines, servers/README.md) is the floor under the others (docs/floor.md), so it comes last.
TRANSPORTS = (*WEB_TRANSPORTS, "tcp")
PATTERNS = ("fanout", "echo", "chat")
UPSTREAMS = ("post", "transport")
ARRIVALS = ("uniform", "poisson")
NETWORK_MODES = ("proxy", "netem")
#: Load generators (runner.loadgen_command); a scenario may sweep them (``engine = [...]``).
ENGINES = ("native", "locust", "browser")
#: What a multi-worker server fans out through (servers/README.md, "Workers behind Redis"):
#: "none" is the one-process server's in-memory hub.
BROKERS = ("none", "redis")
#: The servers' own bound on ``--workers`` (servers/config.py).
MAX_WORKERS = 256
#: What each engine can run, and why not the rest: refused before anything starts.
ENGINE_TRANSPORTS: dict[str, tuple[tuple[str, ...], str]] = {
    "native": (TRANSPORTS, ""),
    "locust": (WEB_TRANSPORTS, "its users speak HTTP and WebSocket only (no plain-TCP user)"),
    "browser": (WEB_TRANSPORTS, "a web page cannot open a plain TCP socket"),
}
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
    #: Server processes on the port (``--workers``); a sweep. More than 1 needs a broker.
    workers: tuple[int, ...] = (1,)
    #: ``--broker`` of those processes; a sweep (see :meth:`topologies`).
    broker: tuple[str, ...] = ("none",)
    stack: tuple[str, ...] = ("python",)  # which server implementation; a sweep

    def topologies(self) -> list[tuple[int, str]]:
        """The (workers, broker) pairs the sweep runs, workers first: every combination
        except more than one worker without a broker, which no server can be (the
        loader refuses a worker count that has no broker to run with)."""
        return [(n, broker) for n in self.workers for broker in self.broker
                if n == 1 or broker != "none"]

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
        # workers / broker vary per point: duplexbench/broker/extension.py adds their flags.
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
