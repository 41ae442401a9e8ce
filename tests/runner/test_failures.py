"""Every way a point can go wrong, with tests/runner/fake_loadgen.py misbehaving on cue.

The runner must record a failed point with its reason, never leave a
meta.json that looks complete, stop children it started, and exit non-zero.
"""

from __future__ import annotations

import pandas as pd

from duplexbench.commands import run as run_command

from duplexbench.runner import loop
from duplexbench.measure.results import load_run

from .helpers import no_children_left, write_scenario

# ---------------------------------------------------------------------------
# Failure paths (fake load generator)


def test_crashed_loadgen_makes_a_failed_point_not_a_complete_run(tmp_path, fake_engine, capsys):
    fake_engine("crash")
    out = tmp_path / "run"
    code = run_command.main([str(write_scenario(tmp_path, transports=["sse"])), "--out", str(out),
                        "--no-report"])
    printed = capsys.readouterr().out
    assert code == loop.EXIT_FAILED
    run = load_run(out)
    assert run.meta["status"] == "failed" and run.meta["complete"] is False
    assert "simulated crash" in run.meta["reason"]
    assert list(run.summary["status"]) == ["failed"]
    assert list(run.summary["validity"]) == ["failed"]
    assert "simulated crash" in run.summary["warnings"][0]
    assert pd.isna(run.summary["lat_p99_ms"][0])  # no figure that looks measured
    assert "simulated crash" in printed
    assert no_children_left() == []


def test_three_failures_in_a_row_stop_the_run(tmp_path, fake_engine, capsys):
    fake_engine("crash")
    out = tmp_path / "run"
    code = run_command.main([str(write_scenario(tmp_path, transports=["sse"], clients=[1, 2, 3, 4])),
                        "--out", str(out), "--no-report", "--quiet"])
    capsys.readouterr()
    assert code == loop.EXIT_FAILED
    run = load_run(out)
    assert len(run.summary) == loop.MAX_CONSECUTIVE_FAILURES
    assert "in a row" in run.meta["reason"] and run.meta["complete"] is False


def test_lost_messages_exit_3_and_say_so(tmp_path, fake_engine, capsys):
    fake_engine("lost")
    out = tmp_path / "run"
    code = run_command.main([str(write_scenario(tmp_path, transports=["websocket"])), "--out", str(out),
                        "--no-report"])
    printed = capsys.readouterr().out
    assert code == loop.EXIT_LOST
    run = load_run(out)
    assert int(run.summary["lost"][0]) == 3
    assert "lost" in run.meta["reason"].lower()
    assert "LOST" in printed


def test_stuck_loadgen_is_stopped_with_its_children(tmp_path, fake_engine, monkeypatch, capsys):
    fake_engine("hang")
    monkeypatch.setattr("duplexbench.runner.point_runner.STUCK_GRACE_S", 1.5)
    out = tmp_path / "run"
    code = run_command.main([str(write_scenario(tmp_path, transports=["sse"], duration=0.5)),
                        "--out", str(out), "--no-report", "--quiet"])
    capsys.readouterr()
    assert code == loop.EXIT_FAILED
    run = load_run(out)
    assert "still running" in run.summary["warnings"][0]
    assert no_children_left() == []


def test_baseline_flag_and_overrides(tmp_path, fake_engine, capsys):
    fake_engine("ok")
    out = tmp_path / "base"
    code = run_command.main([str(write_scenario(tmp_path)), "--out", str(out), "--no-report",
                        "--baseline", "--transports", "sse", "--duration", "0.4", "--repeats", "2"])
    capsys.readouterr()
    assert code == loop.EXIT_OK
    run = load_run(out)
    assert run.meta["baseline"] is True
    assert not (tmp_path / "latest").exists()  # a baseline does not move `latest`
    assert list(run.summary["transport"]) == ["sse", "sse"]
    assert list(run.summary["repeat"]) == [0, 1]
    assert run.meta["scenario"]["parsed"]["duration_s"] == 0.4


def test_bad_scenario_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('duraton_s = 3\n')
    assert run_command.main([str(path), "--out", str(tmp_path / "x")]) == 2
    assert "duraton_s" in capsys.readouterr().out
    assert not (tmp_path / "x").exists()


def test_server_crash_fails_the_point_and_the_run_goes_on(tmp_path, fake_engine, capsys):
    fake_engine("killserver")
    out = tmp_path / "run"
    code = run_command.main([str(write_scenario(tmp_path, transports=["sse", "websocket"])),
                        "--out", str(out), "--no-report", "--quiet"])
    capsys.readouterr()
    assert code == loop.EXIT_FAILED
    run = load_run(out)
    assert list(run.summary["status"]) == ["failed", "failed"]  # both points tried
    assert all("server exited" in text for text in run.summary["warnings"])
    assert run.meta["complete"] is False
    assert no_children_left() == []


def test_a_summarize_bug_fails_the_point_not_the_run(tmp_path, fake_engine, monkeypatch, capsys):
    fake_engine("ok")

    def broken(**kwargs):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr("duplexbench.runner.row.summarize_point", broken)
    out = tmp_path / "run"
    code = run_command.main([str(write_scenario(tmp_path, transports=["sse"])), "--out", str(out),
                        "--no-report", "--quiet"])
    capsys.readouterr()
    assert code == loop.EXIT_FAILED
    run = load_run(out)
    assert "simulated bug" in run.summary["warnings"][0]
    assert run.meta["status"] == "failed"
    assert (out / "points" / "000-sse-r0" / "counters.json").exists()


def test_a_point_that_cannot_fit_is_refused_before_anything_starts(tmp_path, fake_engine, capsys):
    """More subscribers than one server process may hold sockets for: exit 2, limit named."""
    import resource

    fake_engine("ok")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    too_many = min(hard, 10_000_000) + 1000
    out = tmp_path / "run"
    code = run_command.main([str(write_scenario(tmp_path, transports=["sse"], clients=[too_many])),
                        "--out", str(out), "--no-report"])
    printed = capsys.readouterr()
    assert code == loop.EXIT_USAGE
    assert "open-files limit" in printed.out + printed.err and "ulimit -Hn" in printed.out + printed.err
    assert not (out / "meta.json").exists()
    assert no_children_left() == []
