"""`python -m duplexbench run --engine locust`: Locust output lands in the usual results.

Why: reports and compare read ``summary.csv``; a Locust run must produce it in
the standard schema, with ``engine = locust``, through the same runner as the
native engine (server start, pinning, sampling, summary). One short point keeps
this test cheap; tests/locust/test_locust_engine.py covers every transport.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from _scenarios import tiny_scenario
from _timeouts import scaled

from duplexbench.measure.results import SUMMARY_COLUMNS

SCENARIO = tiny_scenario("locust-runner-test", transports=["sse"], clients=6, rate=50)


def test_run_engine_locust_writes_standard_summary(tmp_path: Path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "duplexbench", "run", str(scenario), "--engine", "locust",
         "--workers", "2", "--no-report", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=scaled(120),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = pd.read_csv(out / "summary.csv")
    # The standard columns first (other helpers append theirs, e.g. tls, server_measured).
    assert list(summary.columns)[:len(SUMMARY_COLUMNS)] == list(SUMMARY_COLUMNS)
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row["engine"] == "locust" and row["transport"] == "sse"
    assert row["delivered"] == row["expected"] == 6 * 75  # 50/s x 1.5 s x 6 subscribers
    assert row["lost"] == 0 and row["status"] == "ok"
    assert row["lat_samples"] == row["delivered"] and row["bytes_down_per_msg"] > 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["engine"] == "locust" and meta["clock"] == "CLOCK_REALTIME"
