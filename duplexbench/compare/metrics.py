"""The regression gate's metric table: each compared summary.csv column, how it is judged
(raw samples, one value per repeat, or a count), its threshold and whether it gates.

Kept apart from compare.py (which loads runs and applies the table) because the table is
what changes with the project's knowledge of its own noise; docs/regression.md explains
every threshold and must change with ``METRICS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stats import Threshold

__all__ = ["CPU_FLOOR", "KEY_COLUMNS", "MEDIAN_FLOOR", "METRICS", "PER_REQUEST_BYTES", "MetricSpec"]


@dataclass(frozen=True)
class MetricSpec:
    """One summary.csv column and how to judge it."""

    name: str  # summary.csv column
    kind: str  # "samples" (raw latencies), "repeats" (one value per repeat), "count"
    threshold: Threshold
    gate: bool = True  # False: reported, never fails the build (too noisy or not ours)
    column: str = ""  # samples.parquet column, for kind "samples"
    quantile: float = 0.5
    latency: bool = False  # scaled by --normalize
    tail: bool = False  # gates in A/B mode where both sides' repeats show it stable
    #: A/B mode: judged against the measured noise of the pair log-ratios
    #: (pairnoise.compare_pair_noise), gating, with this floor instead of ``threshold``.
    paired_floor: Threshold | None = None
    #: A/B mode: also one verdict over every point together (pairnoise.compare_pooled_noise).
    pooled: bool = False


def _lat(name: str, column: str, q: float, rel: float, abs_ms: float, gate: bool,
         tail: bool = False, paired_floor: Threshold | None = None) -> MetricSpec:
    return MetricSpec(name, "samples", Threshold(rel, abs_ms), gate, column, q, latency=True,
                      tail=tail, paired_floor=paired_floor)


def _rep(name: str, rel: float, absolute: float, gate: bool = True, worse_up: bool = True,
         latency: bool = False) -> MetricSpec:
    return MetricSpec(name, "repeats", Threshold(rel, absolute, worse_up), gate, latency=latency)


#: A/B floors of the metrics judged against the pairs' noise: the smallest change worth a
#: verdict however quiet the machine (docs/regression.md, "Server cost").
CPU_FLOOR = Threshold(0.03, 0.0)
MEDIAN_FLOOR = Threshold(0.05, 0.05)

#: Every compared metric, in table order. Thresholds: docs/regression.md explains each.
METRICS: tuple[MetricSpec, ...] = (
    # Latency, judged on raw samples. Only medians gate: on a shared 2-core machine two runs of
    # the same build moved p90 by +50 % (+2 ms) and p99 by +60 %, consistently across repeats,
    # while medians stayed within +0.8 ms. A 2 ms delay moves the median by >= 2 ms (x2 margin).
    # Against a committed baseline the tails are reported, marked "(info)"; in A/B mode
    # (duplexbench/compare/ab.py) p90 and p99 gate where each side's own repeats agree on them
    # better than the threshold (tail=True; stats.tail_is_stable). p99.9 never: ~ the maximum.
    # In A/B mode the medians are judged against the pairs' noise (paired_floor).
    _lat("lat_p50_ms", "latency_ms", 0.50, 0.25, 1.0, True, paired_floor=MEDIAN_FLOOR),
    _lat("lat_p90_ms", "latency_ms", 0.90, 0.50, 2.0, False, tail=True),
    _lat("lat_p99_ms", "latency_ms", 0.99, 1.00, 5.0, False, tail=True),
    _lat("lat_p999_ms", "latency_ms", 0.999, 1.00, 10.0, False),
    _rep("lat_mean_ms", 0.25, 1.0, gate=False, latency=True),
    _rep("lat_max_ms", 1.00, 10.0, gate=False, latency=True),
    # From the actual send time: the server's share, without the publisher's own lateness
    # (the most stable latency figure: +-0.1 ms between runs of the same build).
    _lat("sent_p50_ms", "latency_sent_ms", 0.50, 0.25, 1.0, True, paired_floor=MEDIAN_FLOOR),
    _lat("sent_p90_ms", "latency_sent_ms", 0.90, 0.50, 2.0, False, tail=True),
    _lat("sent_p99_ms", "latency_sent_ms", 0.99, 1.00, 5.0, False, tail=True),
    # Open-loop publishing: throughput is the offered rate unless something broke; tight.
    _rep("throughput_msgs_s", 0.03, 1.0, worse_up=False),
    # Per-message costs are nearly deterministic (heartbeats and handshakes amortised over
    # thousands of messages move them by < 1 %): small thresholds catch a 100-byte pad.
    _rep("message_bytes", 0.02, 8.0, gate=False),
    _rep("bytes_down_per_msg", 0.02, 8.0),
    _rep("overhead_down_per_msg", 0.02, 8.0),
    _rep("bytes_up_per_msg", 0.02, 8.0),
    _rep("overhead_up_per_msg", 0.02, 8.0),
    # Long polling batches more or less with timing: requests per message moved by 7 % between
    # two runs of the same build; a bug that adds a request per message is +100 %.
    _rep("http_requests_per_msg", 0.25, 0.10),
    _rep("pub_bytes_up_per_msg", 0.02, 8.0),
    _rep("pub_http_requests_per_msg", 0.05, 0.05),
    # Server cost: CPU per delivered message. Against a committed baseline (another time,
    # another machine state) it only informs: the same build's figure moved by 13 % between
    # repeats 20 s apart on the shared machine. In A/B mode it gates against the pairs' noise
    # (paired_floor): pairs run back to back share the machine's state.
    MetricSpec("server_cpu_us_per_msg", "repeats", Threshold(0.30, 0.0), gate=False,
               paired_floor=CPU_FLOOR, pooled=True),
    # The load generator's, beside it: never gates (it is the instrument, not the server).
    _rep("client_cpu_us_per_msg", 0.30, 0.0, gate=False),
    # Server CPU % of a core: shown, no longer gating (a % of a lightly loaded core moves
    # with every delivery the load makes; per delivered message is the cost).
    _rep("server_cpu_pct", 0.30, 5.0, gate=False),
    _rep("server_rss_mib_max", 0.25, 20.0),  # results.load_run converts schema-1 MB
    _rep("server_connections_max", 0.10, 2.0, gate=False),
    _rep("client_cpu_pct", 0.30, 5.0, gate=False),  # the load generator is not under test
    MetricSpec("lost", "count", Threshold(0, 0)),
    MetricSpec("duplicated", "count", Threshold(0, 0)),
    # Arrived after the drain bound: a symptom worth showing, too noise-prone to gate alone
    # (a point late in every current repeat and no baseline one gates as `validity`).
    MetricSpec("late", "count", Threshold(0, 0), gate=False),
    MetricSpec("reordered", "count", Threshold(0, 0), gate=False),
    MetricSpec("reconnects", "count", Threshold(0, 0), gate=False),
)

#: Byte metrics that carry a per-request cost, and the overhead column that estimates it: a
#: change in batching (requests per message) moves them without any byte getting heavier.
PER_REQUEST_BYTES = {"bytes_down_per_msg": "overhead_down_per_msg",
                     "overhead_down_per_msg": "overhead_down_per_msg",
                     "bytes_up_per_msg": "overhead_up_per_msg",
                     "overhead_up_per_msg": "overhead_up_per_msg"}

#: Parameters that identify a load point across runs (those present in both summaries).
KEY_COLUMNS = ("clients", "rate_msgs_s", "payload_bytes", "delay_ms", "keepalive", "pattern",
               "upstream", "engine", "proxy", "proxy_buffering", "proxy_accel_header",
               "proxy_gzip", "workers", "broker", "http", "streams_per_connection", "stack")
