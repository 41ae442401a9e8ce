"""Ctrl-C and SIGTERM during a measurement: children stopped, run marked incomplete, exit 130.

The runner runs as a real subprocess (as a person starts it), so the signal
arrives exactly as it would from a terminal or a CI job's timeout.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from .helpers import write_scenario

TIMEOUT_SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))
ROOT = Path(__file__).resolve().parents[2]


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def start_until_measuring(tmp_path):
    """The runner as a subprocess, returned once its first point is measuring."""
    scenario = write_scenario(tmp_path, transports=["websocket", "sse"], duration=30)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "duplexbench", "run", str(scenario), "--out", str(out),
         "--no-report"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            assert line is not None, "runner ended early:\n" + "".join(seen)
            seen.append(line)
            if line.strip().startswith("measure"):
                break
        else:
            pytest.fail("no measurement phase within 30 s:\n" + "".join(seen))
        time.sleep(0.3)  # well inside the 30 s measurement
        children = psutil.Process(proc.pid).children(recursive=True)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    names = " ".join(" ".join(c.cmdline()) for c in children)
    assert "servers" in names and "clients.loadgen" in names, names
    return proc, out, lines, seen, children


def _cleanup(proc, children) -> None:
    """Never leave the test's own mess behind, whatever the assertions said."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass


def _survivors(children, wait_s: float = 0.0) -> list[int]:
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for child in children:
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_measurement(tmp_path, sig):
    proc, out, lines, seen, children = start_until_measuring(tmp_path)
    try:
        proc.send_signal(sig)
        code = proc.wait(timeout=30 * TIMEOUT_SCALE)
        while (line := lines.get(timeout=5)) is not None:
            seen.append(line)
        output = "".join(seen)
        assert code == 130, output
        meta = json.loads((out / "meta.json").read_text())
        assert meta["status"] == "incomplete" and meta["complete"] is False, meta["reason"]
        assert signal.Signals(sig).name in meta["reason"] or "interrupt" in meta["reason"].lower()
        assert meta["points_done"] == 0  # the interrupted point is not passed off as measured
        assert _survivors(children) == [], "children survived the runner"
        assert "incomplete" in output
    finally:
        _cleanup(proc, children)


def test_sigkilled_runner_takes_its_children_along(tmp_path):
    """No hook runs on SIGKILL: the kernel's parent-death signal must do it."""
    proc, out, lines, seen, children = start_until_measuring(tmp_path)
    try:
        proc.kill()
        proc.wait(timeout=10)
        assert _survivors(children, wait_s=10 * TIMEOUT_SCALE) == []
        meta = json.loads((out / "meta.json").read_text())
        assert meta["status"] == "running" and meta["complete"] is False  # never "complete"
    finally:
        _cleanup(proc, children)
