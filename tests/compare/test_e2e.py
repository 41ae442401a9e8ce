"""The plain ``compare`` gate against real runs: same build passes, injected delay and padding fail.

The same-build pair and the +2 ms pair are the A/B runs test_ab.py judges (made once per
session, realruns.py): fresh runs, never copies, here read by ``compare`` without pairing.
One run of this test's own adds ``DUPLEXBENCH_INJECT_PAD_BYTES=100`` through the environment
(the +2 ms pair's points on two transports, 2 repeats of 0.5 s: bytes per message hardly vary,
~10 s), judged against that pair's base, which is made early in the session: the same-build
pair is made last (tests/conftest.py's LATE_TESTS), and waiting for it would end the session
with this run. Every injected run must fail naming the right metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from duplexbench.commands import compare as compare_command
from tests._scenarios import tiny_scenario
from tests._timeouts import scaled

from .realruns import ROOT, new_root

#: The first test here may make both A/B runs (when test_ab.py did not run first) and its own.
#: Not exclusive: test_ab.py's exclusive tests make the A/B runs first (the same work unit
#: under xdist, tests/conftest.py); this module's own run judges bytes, which load does not move.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(300))]


def _runner_problem() -> str | None:
    """Why `python -m duplexbench run` cannot work here yet, or None."""
    probe = subprocess.run(
        [sys.executable, "-c", "import duplexbench.commands.run, clients.loadgen, servers.__main__"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    if probe.returncode:
        lines = probe.stderr.strip().splitlines() or ["unknown import error"]
        return f"the runner does not import ({lines[-1]})"
    return None


@pytest.fixture(scope="module")
def padded():
    """A run of this tree with every delivered envelope 100 bytes larger."""
    problem = _runner_problem()
    if problem:  # the runner exists: failing to import it is a bug, not a reason to skip
        pytest.fail(f"end-to-end gate tests need `python -m duplexbench run`: {problem}")
    root = new_root("duplexbench-compare-e2e-")
    try:
        scenario = root / "ab-child.toml"
        # The child A/B run's points (realruns.CHILD_SCENARIO) on two of its transports (the
        # others are "only in the base run, not compared"), shorter: 100 B per message is 30x
        # the threshold, and the byte counts of one build move by < 1 % between repeats.
        scenario.write_text(tiny_scenario(
            "ab-child", transports=["longpoll", "websocket"], clients=10, rate=100,
            warmup_s=0.5, duration_s=0.5, drain_s=0.3, repeats=2, seed=1, arrival="uniform",
            tables={"server": {"uvloop": True}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUPLEXBENCH_INJECT_")}
        env["DUPLEXBENCH_INJECT_PAD_BYTES"] = "100"
        run_dir = root / "pad"
        done = subprocess.run(
            [sys.executable, "-m", "duplexbench", "run", str(scenario), "--out", str(run_dir),
             "--no-report", "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=scaled(120))
        assert done.returncode == 0, f"run pad failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        yield run_dir
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _compare(capsys, base: Path, cur: Path) -> tuple[int, str]:
    status = compare_command.main([str(base), str(cur)])
    out, err = capsys.readouterr()
    return status, out + err


def _meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


def test_same_build_fresh_runs_pass(ab_same, capsys):
    status, out = _compare(capsys, ab_same.out / "base", ab_same.out / "current")
    assert status == 0, out
    assert out.strip().splitlines()[-1].startswith("OK: no regression")


def test_injected_delay_fails_naming_latency(ab_child, capsys):
    # The child's servers report the delay they inject (/healthz), so meta.json records it.
    assert (_meta(ab_child.out / "current").get("inject") or {}).get("delay_ms") == 2, \
        "inject not recorded"
    status, out = _compare(capsys, ab_child.out / "base", ab_child.out / "current")
    last = out.strip().splitlines()[-1]
    assert status == 1, out
    for transport in ("longpoll", "websocket"):
        # Either median may miss on a busy machine (one disturbed baseline repeat makes the
        # repeats overlap); the delay must show in at least one latency median per transport.
        assert f"{transport} lat_p50_ms +" in last or f"{transport} sent_p50_ms +" in last, out


def test_injected_padding_fails_naming_bytes(ab_child, padded, capsys):
    assert (_meta(padded).get("inject") or {}).get("pad_bytes") == 100, "inject not recorded"
    status, out = _compare(capsys, ab_child.out / "base", padded)
    last = out.strip().splitlines()[-1]
    assert status == 1, out
    for transport in ("longpoll", "websocket"):
        assert f"{transport} bytes_down_per_msg +" in last, out
