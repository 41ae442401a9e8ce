"""The runner end to end on the real servers and load generator (tiny: 3 clients, 50 msg/s)."""

from __future__ import annotations

import pandas as pd

from duplexbench.commands import run as run_command

from duplexbench.runner import loop
from duplexbench.runner.session import SKIP_CALIBRATION_ENV
from duplexbench.measure.results import SUMMARY_COLUMNS, load_run

from .helpers import no_children_left, write_scenario

# ---------------------------------------------------------------------------
# The real thing


def test_tiny_scenario_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(SKIP_CALIBRATION_ENV)  # this run calibrates, as a user's does
    out = tmp_path / "run"
    code = run_command.main([str(write_scenario(tmp_path)), "--out", str(out), "--no-report"])
    printed = capsys.readouterr().out
    assert code == loop.EXIT_OK, printed
    run = load_run(out)
    assert run.meta["status"] == "complete" and run.meta["complete"] is True
    assert list(pd.read_csv(out / "summary.csv").columns)[: len(SUMMARY_COLUMNS)] == list(SUMMARY_COLUMNS)
    summary = run.summary
    assert list(summary["transport"]) == ["longpoll", "websocket"]
    assert (summary["lost"] == 0).all()
    assert (summary["delivered"] > 0).all()
    assert (summary["status"] == "ok").all()
    assert summary["lat_p99_ms"].notna().all()
    assert summary["server_cpu_s"].notna().all() and summary["client_cpu_s"].notna().all()
    # Process samples: both processes, every phase, at >= 10 Hz in the measurement.
    load = run.load()
    assert set(load["process"]) == {"server", "loadgen"}
    measure = load[(load["phase"] == "measure") & (load["process"] == "server")]
    for _, group in measure.groupby("point"):
        span = group["t_s"].max() - group["t_s"].min()
        assert (len(group) - 1) / span >= 10
    assert {"warmup", "measure", "drain"} <= set(load["phase"])
    assert len(run.samples()) == summary["lat_samples"].sum()
    # Metadata the other parts rely on.
    assert run.meta["affinity"]["server"] in ([0], None)
    assert "gc" in run.meta and run.meta["calibration"]["tcp_echo_rtt_us_p50"] > 0
    assert run.meta["calibration"]["echo_at_rate_us_p50"] > 0
    assert run.meta["baseline"] is False
    for point_dir in (out / "points").iterdir():
        assert (point_dir / "spec.json").exists() and (point_dir / "loadgen.stderr").exists()
    # The terminal: the table and where the results are.
    assert "websocket" in printed and "results:" in printed
    assert "\r" not in printed  # not a terminal: plain lines, no carriage-return spam
    assert no_children_left() == []


