"""What differs between two runs of the same build, beyond each run's own sampling.

One run can measure its own sampling error (report/noise.py) but not what a
rerun changes: the machine's other load, memory layout, which stall happened
when. That part is measured by rerunning: ``python -m duplexbench reproduce
SCENARIO --runs N`` prints, per metric, the between-run standard deviation
left once each run's own error is taken out (reproduce.json ``calibration``).
The values below are those measurements; report/intervals.py adds them to every
figure's error. They are the noise model of this machine class (2 shared cores),
not results: rerun the command on another machine and compare (docs/DESIGN.md,
"Confidence", has the command, the date and the coverage they give).
"""

from __future__ import annotations

__all__ = ["RERUN_SD", "RATIO_RERUN_SD", "MEASURED_BY", "rerun_sd", "ratio_rerun_sd"]

#: metric column -> transport -> log-scale sd a rerun adds (0.05: one run's figure moves ~5 %);
#: "*" for a transport not listed. Per transport: long polling batches under load, so its
#: bytes, requests and latency move with the machine's speed; a stream's bytes never do.
RERUN_SD: dict[str, dict[str, float]] = {
    "server_cpu_s_per_1k": {"*": 0.2, "longpoll": 0.21, "sse": 0.34, "ndjson": 0.14,
                            "websocket": 0.23},
    "client_cpu_s_per_1k": {"*": 0.21, "longpoll": 0.28, "sse": 0.34, "ndjson": 0.12,
                            "websocket": 0.2},
    "lat_p50_ms": {"*": 0.46, "longpoll": 0.72, "sse": 0.45, "ndjson": 0.57, "websocket": 0.28},
    "lat_p99_ms": {"*": 0.78, "longpoll": 1.02, "sse": 0.81, "ndjson": 1.07, "websocket": 0.9},
    "bytes_per_msg": {"*": 0.08, "longpoll": 0.12, "sse": 0.005, "ndjson": 0.005,
                      "websocket": 0.008},
    "http_requests_per_msg": {"*": 0.2, "longpoll": 0.2},
    "server_rss_kib_per_conn": {"*": 0.78, "longpoll": 2.44, "sse": 0.66, "ndjson": 0.23,
                                "websocket": 0.48},
}

#: metric column -> log-scale sd a rerun adds to a ratio of two transports at one point.
#: Smaller than two transports' RERUN_SD added: what moves between runs (the machine's
#: speed, a neighbour's load) moves every transport of a run together.
RATIO_RERUN_SD: dict[str, float] = {
    "server_cpu_s_per_1k": 0.27,
    "client_cpu_s_per_1k": 0.29,
    "lat_p50_ms": 0.57,
    "lat_p99_ms": 0.7,
    "bytes_per_msg": 0.092,
    "server_rss_kib_per_conn": 1.16,
}

#: Where the figures above come from.
MEASURED_BY = (
    "the 'suggested' column of `python -m duplexbench reproduce --judge` over five runs of "
    "scenarios/quick.toml (one `duplexbench run` process each, back to back, 2026-12-04, "
    "this 2-core shared machine), rounded up")


def ratio_rerun_sd(metric: str) -> float | None:
    """The between-run log-sd of a ratio of two transports for ``metric`` (None: not
    measured; the two transports' RERUN_SD add instead)."""
    value = RATIO_RERUN_SD.get(metric)
    return None if value is None else float(value)


def rerun_sd(metric: str, transport: str) -> float:
    """The between-run log-sd of ``metric`` for ``transport`` (0 for a metric not listed)."""
    by_transport = RERUN_SD.get(metric) or {}
    return float(by_transport.get(transport, by_transport.get("*", 0.0)))
