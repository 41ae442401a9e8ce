"""Must show (small): a faults scenario runs end to end and every point recovers.

The shipped scenarios/faults.toml is every transport x 3 faults (~3 minutes:
`make faults`); this runs its SSE column with a shorter measurement, the
transport whose browser clients the restart bug killed. SSE's SIGTERM point
must lose nothing acknowledged, the cut point nothing at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests._timeouts import scaled


@pytest.mark.slow
def test_faults_scenario_recovers(tmp_path: Path):
    out = tmp_path / "run"
    run = subprocess.run(
        [sys.executable, "-m", "duplexbench", "run", "scenarios/faults.toml", "--transports", "sse",
         "--duration", "5", "--out", str(out), "--quiet", "--no-report"],
        capture_output=True, text=True, timeout=scaled(150))
    summary = pd.read_csv(out / "summary.csv")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert list(summary["fault"]) == ["restart-sigterm", "restart-sigkill", "cut"]
    assert (summary["status"] == "ok").all(), summary[["fault", "status", "warnings"]]
    assert (summary["unrecovered"] == 0).all()
    assert (summary["recovery_s_max"] < 10).all()  # finite: everyone receives again
    lossless = summary[summary["fault"] != "restart-sigkill"]
    assert (lossless["lost"] == 0).all(), lossless[["fault", "lost"]]
    meta = json.loads((out / "meta.json").read_text())
    events = [f["events"][0] for f in meta["faults"]]
    assert events[0]["new_pid"] != events[0]["old_pid"] and events[0]["exit_code"] == 0
    assert events[1]["exit_code"] == -9
    assert (out / "points" / "000-sse-r0" / "server-restarts.log").exists()
