"""Workers behind a broker in the report: the broker's cost per transport, and the shapes kept apart.

A synthetic run (the committed fixture) gets, for every one-process row, a row of two
workers behind Redis at the same point with known costs; the report must set the two
side by side per transport (CPU, latency, the broker's leg), compare only rows that can
carry a comparison, and keep the brokered rows out of the cross-transport findings.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from duplexbench.report import build_report
from duplexbench.report import scaleout
from duplexbench.report.content import collect
from duplexbench.report.load import load_run_dir


def _brokered(run_dir, *, saturate: str = ""):
    """Add a 2-workers-behind-Redis row per fixture row: CPU x1.5 (+ Redis 0.2x), p50 +1 ms."""
    path = run_dir / "summary.csv"
    one = pd.read_csv(path)
    one["workers"], one["broker"] = 1, "none"
    two = one.copy()
    two["point"] = two["point"] + len(one)
    two["workers"], two["broker"] = 2, "redis"
    two["server_cpu_s"] = one["server_cpu_s"] * 1.5
    two["broker_cpu_s"] = one["server_cpu_s"] * 0.2
    two["lat_p50_ms"] = one["lat_p50_ms"] + 1.0
    two["broker_transit_p50_ms"], two["broker_transit_p99_ms"] = 0.4, 2.0
    two["broker_publish_p50_ms"] = 1.5
    two["broker_reads_per_msg"] = 2.0
    one["validity"], two["validity"] = "ok", "ok"
    if saturate:
        one.loc[one["transport"] == saturate, "validity"] = "loadgen-saturated"
    pd.concat([one, two], ignore_index=True).to_csv(path, index=False)
    return run_dir


@pytest.fixture
def run(fixture_run):
    return _brokered(fixture_run("synthetic-a"), saturate="longpoll")


def test_broker_cost_per_transport(run):
    report_run = load_run_dir(run)
    costs = scaleout.broker_costs(report_run)
    assert len(costs) == 12  # 4 transports x 3 subscriber counts, each against one process
    sse = [c for c in costs if c.transport == "sse"][-1]
    assert (sse.workers, sse.broker, sse.clients) == (2, "redis", 500)
    assert sse.ratio == pytest.approx(1.7)  # (1.5 + 0.2) x the one process's CPU per message
    assert sse.many["lat_p50_ms"] - sse.one["lat_p50_ms"] == pytest.approx(1.0)
    texts = [f.text for f in scaleout.findings(report_run)]
    sse_text = next(t for t in texts if t.startswith("SSE at 500 subscribers"))
    assert "2 workers behind Redis used 1.7× the CPU per delivered message" in sse_text
    assert "+1.00 ms" in sse_text and "broker's leg" in sse_text and "p50 0.4 ms" in sse_text
    # A side that cannot carry a comparison is named, not compared.
    poll = next(t for t in texts if t.startswith("Long polling at 500 subscribers"))
    assert "not compared with one process (one process: loadgen-saturated)" in poll


def test_the_report_keeps_shapes_apart(fixture_run, tmp_path):
    plain = fixture_run("synthetic-a")
    both = _brokered(shutil.copytree(plain, tmp_path / "brokered"))
    build_report([both])
    markdown = (both / "report.md").read_text()
    assert "## Workers behind a broker" in markdown and "broker_costs.png" in markdown
    assert "| SSE | 500 | 10 | 2 workers behind Redis |" in markdown
    # The summary table shows the shape; transport comparisons use one process only, so
    # they read exactly as in the run without the brokered rows.
    assert "| transport | workers | broker |" in markdown

    def compared(path):
        return [f.text for f in collect([load_run_dir(path)]).runs[0].findings
                if f.kind in ("compare", "tie")]

    assert compared(both) == compared(plain) and compared(plain)
