"""`python -m duplexbench engines`: both engines on one server, CPU per 1,000 messages.

Why: the benchmark is the evidence for "when to add Locust workers"; this test
checks that it runs end to end and prints both engines' figures (the figures
themselves are machine-dependent, so they are not asserted beyond being > 0).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from _scenarios import tiny_scenario
from _timeouts import scaled

SCENARIO = tiny_scenario("engines-test", transports=["websocket"], clients=5, rate=40,
                         tables={"server": {"uvloop": False}})


def test_engines_benchmark_prints_both_engines(tmp_path: Path):
    scenario = tmp_path / "engines.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "duplexbench", "engines", str(scenario), "--workers", "2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=scaled(120),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("engine "))
    assert "CPU s / 1,000 msgs" in header
    native = next(line for line in lines if line.startswith("native "))
    locust = next(line for line in lines if line.startswith("locust "))
    assert native.split()[2] == locust.split()[2] == "300"  # 40/s x 1.5 s x 5 clients
    assert "the native engine's client CPU" in proc.stdout

    with open(out / "engines.csv", newline="") as handle:
        rows = {row["engine"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"native", "locust"}
    for row in rows.values():
        assert int(row["delivered"]) == 300 and int(row["lost"]) == 0
        assert float(row["cpu_s_per_1k_measure"]) > 0 and float(row["cpu_s_per_1k_total"]) > 0
    meta = json.loads((out / "engines.json").read_text())
    assert meta["point"]["clients"] == 5 and len(meta["rows"]) == 2
    assert (out / "locust" / "out" / "counters.json").exists()
