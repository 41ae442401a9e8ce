"""Plain TCP through the harness's faults: a restart keeps the listener's port, the cut's
proxy stands in front of the TCP listener too (not only the HTTP port), and the clients
resume (a cut) or are reset to the new server's epoch (a restart) losing nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests._scenarios import tiny_scenario
from tests._timeouts import scaled


@pytest.mark.slow
def test_tcp_recovers_from_a_restart_and_a_cut(tmp_path: Path):
    scenario = tmp_path / "tcpfaults.toml"
    scenario.write_text(tiny_scenario(
        "tcpfaults", transports=["tcp"], clients=10, rate=50, warmup_s=1.0, duration_s=6.0,
        drain_s=1.0, expect_loss=False,
        tables={"faults": {"kind": ["restart-sigterm", "cut"], "at_s": 1.5, "down_s": 0.3,
                           "reconnect_min_s": 0.1, "reconnect_max_s": 2.0}}))
    out = tmp_path / "run"
    run = subprocess.run(
        [sys.executable, "-m", "duplexbench", "run", str(scenario), "--out", str(out),
         "--quiet", "--no-report"], capture_output=True, text=True, timeout=scaled(120))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["fault"]) == ["restart-sigterm", "cut"]
    assert (summary["status"] == "ok").all(), summary[["fault", "status", "warnings"]]
    assert (summary["lost"] == 0).all() and (summary["unrecovered"] == 0).all()
    assert (summary[summary["fault"] != "cut"]["resets"] >= 10).all()  # the new epoch, all
    assert (summary["recovery_s_max"] < 6).all()
    # The cut's subscribers connected through the proxy in front of the TCP listener, not
    # past it (which the cut could not have cut); the restart's found the listener itself.
    specs = [json.loads(p.read_text()) for p in sorted(out.rglob("spec.json"))]
    assert [s.get("sub_tcp", "") != "" for s in specs] == [False, True]
    paths = json.loads((out / "meta.json").read_text())["network_paths"]
    tcp_paths = [p["path"] for p in paths if p["path"].get("for") == "tcp listener"]
    assert len(tcp_paths) == 1 and tcp_paths[0]["proxy_stats"]["cut_connections"] == 10
    # The restarted server listened on the first one's TCP port (its start-up line).
    logs = sorted(out.rglob("server*.log"))
    ports = {line.split("tcp://")[1].split()[0] for log in logs for line in
             log.read_text().splitlines() if "listening on" in line and "tcp://" in line}
    assert logs and len(ports) <= 2, ports  # one per point at most: the restart kept it
