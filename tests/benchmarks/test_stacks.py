"""`python -m duplexbench stacks`: both stacks, one table (transport x stack), a report.

The table arithmetic is checked on a hand-made run (fast); one small real run of
both stacks (WebSocket, 20 subscribers, ~2 s per point) shows the command end to
end and is skipped, with the reason, when the Node reference cannot run.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import pandas as pd
import pytest
from _scenarios import tiny_scenario
from _timeouts import scaled

from duplexbench.benchmarks.stacks import render_markdown, stack_rows
from _parts import needs

SCENARIO = tiny_scenario("stacks-test", transports=["websocket"], clients=20, rate=20, topics=1,
                         warmup_s=0.3, drain_s=2.0, expect_loss=False,
                         tables={"server": {"queue_limit": 1000}})


def _fake_run(root, stack, cpu_s, rss, lost=0):
    run = root / stack
    run.mkdir()
    pd.DataFrame([{"point": 0, "repeat": 0, "transport": "sse", "clients": 100, "rate_msgs_s": 1.0,
                   "delivered": 1000, "lost": lost, "server_cpu_s": cpu_s,
                   "server_rss_mb_max": rss, "lat_p99_ms": 9.0, "status": "ok"}]
                 ).to_csv(run / "summary.csv", index=False)
    pd.DataFrame({"point": 0, "repeat": 0, "latency_ms": [float(i) for i in range(1, 101)]}
                 ).to_parquet(run / "samples.parquet")


def test_rows_ratio_verdict_memory_and_p95(tmp_path):
    _fake_run(tmp_path, "python", cpu_s=0.03, rss=60.0)
    _fake_run(tmp_path, "node", cpu_s=0.01, rss=50.0)
    baselines = {"python": {(0, 0): 40.0}, "node": {(0, 0): 45.0}}
    python, node = stack_rows(tmp_path, ["python", "node"], baselines)
    assert (python["stack"], node["stack"]) == ("python", "node")
    assert python["server_cpu_us_per_msg"] == pytest.approx(30.0)
    assert python["cpu_ratio_vs_node"] == pytest.approx(3.0)
    assert python["within_target"] == "no" and python["target_ratio"] == 1.5
    assert math.isnan(node["cpu_ratio_vs_node"])
    assert python["server_kib_per_conn"] == pytest.approx(20 * 1024 / 100)
    assert python["lat_p95_ms"] == 95.0  # nearest rank of 1..100
    table = render_markdown([python, node], "python -m duplexbench stacks X", "note")
    assert "| sse | 100 | python |" in table and "3.00× (no: ≤ 1.5×)" in table


def test_a_generator_bound_point_is_not_a_verdict(tmp_path):
    _fake_run(tmp_path, "python", cpu_s=0.01, rss=60.0)
    _fake_run(tmp_path, "node", cpu_s=0.01, rss=50.0)
    summary = pd.read_csv(tmp_path / "node" / "summary.csv").assign(validity="loadgen-saturated")
    summary.to_csv(tmp_path / "node" / "summary.csv", index=False)
    python, node = stack_rows(tmp_path, ["python", "node"], {})
    assert python["within_target"] == "yes, but not comparable"
    assert "loadgen-saturated" in render_markdown([python, node], "cmd", "note")


def test_lost_messages_fail_the_verdict(tmp_path):
    _fake_run(tmp_path, "python", cpu_s=0.01, rss=60.0, lost=3)
    _fake_run(tmp_path, "node", cpu_s=0.01, rss=50.0)
    python, _ = stack_rows(tmp_path, ["python", "node"], {})
    assert python["cpu_ratio_vs_node"] == pytest.approx(1.0) and python["within_target"] == "no"


def test_bad_stacks_argument_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "duplexbench", "stacks", "--stacks", "python,ruby",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=scaled(60))
    assert proc.returncode == 2 and "ruby" in proc.stdout + proc.stderr


def test_bad_clients_override_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "duplexbench", "stacks", "--stacks", "python", "--clients", "0",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=scaled(60))
    assert proc.returncode == 2 and "clients" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@needs("node")
def test_stacks_runs_both_stacks_side_by_side(tmp_path):
    scenario = tmp_path / "stacks-test.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "duplexbench", "stacks", str(scenario), "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=scaled(180))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "stacks.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["transport"], r["stack"]) for r in rows] == [("websocket", "python"), ("websocket", "node")]
    for row in rows:
        assert int(row["lost"]) == 0 and int(row["delivered"]) > 0
        assert float(row["server_cpu_us_per_msg"]) > 0 and float(row["lat_p95_ms"]) > 0
    assert (out / "python" / "summary.csv").exists() and (out / "node" / "summary.csv").exists()
    assert "| websocket | 20 | node |" in (out / "stacks.md").read_text()
    assert (out / "report-side-by-side.md").exists()
