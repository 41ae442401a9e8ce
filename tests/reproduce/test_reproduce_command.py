"""`python -m duplexbench reproduce` for real: separate runs, the table, Ctrl-C keeps what finished.

One short series (a tiny two-transport scenario, three runs asked for, the third
interrupted) covers the command end to end: every run is its own `duplexbench
run` process with its own servers, the table compares the two that finished,
and nothing is left running.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from _scenarios import tiny_scenario
from _timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> dict[int, tuple[psutil.Process, tuple[str, ...]]]:
    """The process tree now: pid -> (process, its command line, read while it runs)."""
    found = {}
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            found[child.pid] = (child, tuple(child.cmdline()))
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
def test_reproduce_runs_judges_and_keeps_finished_runs_on_ctrl_c(tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(tiny_scenario("tiny", transports=["sse", "websocket"], clients=3,
                                      rate=100, warmup_s=0.3, duration_s=1.0, drain_s=0.3))
    out = tmp_path / "series"
    proc = subprocess.Popen(
        [sys.executable, "-m", "duplexbench", "reproduce", str(scenario), "--runs", "3",
         "--out", str(out), "--no-report", "--lock", str(tmp_path / "lock")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[int, tuple[psutil.Process, tuple[str, ...]]] = {}
    try:
        deadline = time.monotonic() + scaled(90)
        while not (out / "run-3" / "meta.json").exists():  # runs 1 and 2 done, 3 started
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            seen.update(_descendants(proc.pid))
            time.sleep(0.1)
        time.sleep(1.0)
        seen.update(_descendants(proc.pid))
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=scaled(60))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert "run-1: exit 0" in output and "run-2: exit 0" in output, output
    # Every run was a separate `duplexbench run` process (its own servers and load generator).
    runs = [cmd for _, cmd in seen.values() if cmd[2:4] == ("duplexbench", "run")]
    assert len({cmd[cmd.index("--out") + 1] for cmd in runs}) == 3, runs
    assert json.loads((out / "run-3" / "meta.json").read_text())["status"] == "incomplete"
    table = json.loads((out / "reproduce.json").read_text())
    assert [r["label"] for r in table["runs"]] == ["run-1", "run-2"]  # what finished
    for finding in table["findings"]:
        assert [c["other"] for c in finding["checks"]] == (
            ["run-2"] if finding["run"] == "run-1" else ["run-1"])
        assert finding["checks"][0]["outcome"] in ("held", "moved", "contradicted", "n/a")
    assert table["coverage"], "figures with intervals were compared"
    assert "ratio_calibration" in table and "ratio_model" in table
    assert "Findings and the other runs" in (out / "reproduce.md").read_text()
    time.sleep(0.5)
    assert [cmd for p, cmd in seen.values() if _alive(p)] == []


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
