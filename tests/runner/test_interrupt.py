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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_measurement(tmp_path, sig):
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
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 30 * TIMEOUT_SCALE
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
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "servers" in names and "clients.loadgen" in names, names
        proc.send_signal(sig)
        code = proc.wait(timeout=30 * TIMEOUT_SCALE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in children:  # never leave the test's own mess behind
            try:
                child.kill()
            except psutil.Error:
                pass
    while (line := lines.get(timeout=5)) is not None:
        seen.append(line)
    output = "".join(seen)
    assert code == 130, output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "incomplete" and meta["complete"] is False, meta["reason"]
    assert signal.Signals(sig).name in meta["reason"] or "interrupt" in meta["reason"].lower()
    assert meta["points_done"] == 0  # the interrupted point is not passed off as measured
    survivors = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], f"survived: {survivors}"
    assert "incomplete" in output
