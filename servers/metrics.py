"""Server counters and their Prometheus text rendering.

Plain integers in dicts keyed by transport label: incrementing one costs a dict
lookup, so the per-message path can afford it (handlers count per write batch,
not per byte). Labels: ``longpoll``, ``sse``, ``ndjson``, ``websocket``, ``tcp``,
``publish`` (POST /publish) and ``other`` (health, metrics, errors).
"""

from __future__ import annotations

from collections import defaultdict

from .gcpolicy import GcStats

__all__ = ["LABELS", "Metrics"]

LABELS = ("longpoll", "sse", "ndjson", "websocket", "tcp", "publish", "other")


class Metrics:
    __slots__ = (
        "connections_open", "http_requests", "published", "delivered",
        "bytes_written", "slow_consumer_drops", "publisher_waits", "publisher_wait_seconds", "gc",
        "extra",
    )

    def __init__(self) -> None:
        #: Open subscriber connections (long polling: requests being held or answered).
        self.connections_open: defaultdict[str, int] = defaultdict(int)
        self.http_requests: defaultdict[str, int] = defaultdict(int)
        self.published = 0
        #: Envelopes handed to the socket (one per subscriber per message).
        self.delivered: defaultdict[str, int] = defaultdict(int)
        #: Body bytes written (framing included, HTTP headers not).
        self.bytes_written: defaultdict[str, int] = defaultdict(int)
        self.slow_consumer_drops: defaultdict[str, int] = defaultdict(int)
        #: The burst rule at work: publishes that waited for a congested topic, and how long.
        self.publisher_waits = 0
        self.publisher_wait_seconds = 0.0
        #: The garbage collector's work (installed while the app runs: servers/gcpolicy.py).
        self.gc = GcStats()
        #: More families, rendered last: () -> lines (the broker hub's, servers/broker_metrics.py).
        self.extra: list = []

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        out: list[str] = []
        self._family(out, "connections_open", "gauge", "Open subscriber connections.",
                     self.connections_open)
        self._family(out, "http_requests_total", "counter", "HTTP requests (upgrades included).",
                     self.http_requests)
        out.append("# HELP duplexbench_messages_published_total Messages accepted by the hub.")
        out.append("# TYPE duplexbench_messages_published_total counter")
        out.append(f"duplexbench_messages_published_total {self.published}")
        self._family(out, "messages_delivered_total", "counter",
                     "Envelopes written to subscribers.", self.delivered)
        self._family(out, "bytes_written_total", "counter",
                     "Body bytes written to subscribers, framing included.", self.bytes_written)
        self._family(out, "slow_consumer_drops_total", "counter",
                     "Connections closed because their queue overflowed.",
                     self.slow_consumer_drops)
        out.append("# HELP duplexbench_publisher_waits_total Publishes that waited for a "
                   "congested topic (burst rule).")
        out.append("# TYPE duplexbench_publisher_waits_total counter")
        out.append(f"duplexbench_publisher_waits_total {self.publisher_waits}")
        out.append("# HELP duplexbench_publisher_wait_seconds_total Time publishers spent waiting.")
        out.append("# TYPE duplexbench_publisher_wait_seconds_total counter")
        out.append(f"duplexbench_publisher_wait_seconds_total {self.publisher_wait_seconds:.6f}")
        out.append("# HELP duplexbench_gc_collections_total Garbage collections per generation.")
        out.append("# TYPE duplexbench_gc_collections_total counter")
        for gen, count in enumerate(self.gc.collections):
            out.append(f'duplexbench_gc_collections_total{{generation="{gen}"}} {count}')
        out.append("# HELP duplexbench_gc_seconds_total Time spent in garbage collections.")
        out.append("# TYPE duplexbench_gc_seconds_total counter")
        for gen, seconds in enumerate(self.gc.seconds):
            out.append(f'duplexbench_gc_seconds_total{{generation="{gen}"}} {seconds:.6f}')
        out.append("# HELP duplexbench_gc_collected_total Unreachable objects the collector freed.")
        out.append("# TYPE duplexbench_gc_collected_total counter")
        for gen, count in enumerate(self.gc.collected):
            out.append(f'duplexbench_gc_collected_total{{generation="{gen}"}} {count}')
        for render in self.extra:
            out += render()
        return "\n".join(out) + "\n"

    @staticmethod
    def _family(out: list[str], name: str, kind: str, text: str, values: dict[str, int]) -> None:
        out.append(f"# HELP duplexbench_{name} {text}")
        out.append(f"# TYPE duplexbench_{name} {kind}")
        for label in LABELS:
            if label in values or label not in ("publish", "other"):
                out.append(f'duplexbench_{name}{{transport="{label}"}} {values.get(label, 0)}')
