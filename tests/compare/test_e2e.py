"""The gate against real runs: same build passes, injected delay and padding fail.

Four tiny runs of a two-transport scenario (about 10-15 s each): a baseline, one more run of
the same build (a fresh run, never a copy), one with ``DUPLEXBENCH_INJECT_DELAY_MS=2`` and one
with ``DUPLEXBENCH_INJECT_PAD_BYTES=100``; every injected run must fail naming the right
metrics. (The A/B mode's own end-to-end test is test_ab.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from duplexbench import compare

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))

pytestmark = pytest.mark.slow

#: Two transports at the extremes of cost (a request per message vs a frame per message).
SCENARIO = """\
name = "ci-tiny"
transports = ["longpoll", "websocket"]
pattern = "fanout"
clients = [5]
rate = [200]
payload_bytes = [64]
warmup_s = 0.5
duration_s = 1.0
drain_s = 0.3
repeats = 2
seed = 1
[server]
uvloop = true
"""


def _runner_problem() -> str | None:
    """Why `python -m duplexbench run` cannot work here yet, or None."""
    probe = subprocess.run(
        [sys.executable, "-c", "import duplexbench.runner, clients.loadgen, servers.__main__"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    if probe.returncode:
        lines = probe.stderr.strip().splitlines() or ["unknown import error"]
        return f"the runner does not import ({lines[-1]})"
    return None


@pytest.fixture(scope="module")
def runs():
    """name -> run directory, for the five runs; a runner that does not import is a failure."""
    problem = _runner_problem()
    if problem:  # the runner exists: failing to import it is a bug, not a reason to skip
        pytest.fail(f"end-to-end gate tests need `python -m duplexbench run`: {problem}")
    # Our own temp dir, not tmp_path_factory: concurrent pytest sessions of the same user prune
    # each other's old basetemp dirs, and these runs must outlive ~1 minute of tests.
    root = Path(tempfile.mkdtemp(prefix="duplexbench-compare-e2e-"))
    try:
        yield _make_runs(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _make_runs(root: Path) -> dict[str, Path]:
    scenario = root / "ci-tiny.toml"
    scenario.write_text(SCENARIO)
    plan = {"base": {}, "same1": {},
            "delay": {"DUPLEXBENCH_INJECT_DELAY_MS": "2"},
            "pad": {"DUPLEXBENCH_INJECT_PAD_BYTES": "100"}}
    out = {}
    for name, extra in plan.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUPLEXBENCH_INJECT_")}
        env.update(extra)
        run_dir = root / name
        done = subprocess.run(
            [sys.executable, "-m", "duplexbench", "run", str(scenario), "--out", str(run_dir),
             "--no-report", "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120 * TIMEOUT_SCALE)
        assert done.returncode == 0, f"run {name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        out[name] = run_dir
    return out


def _compare(capsys, base: Path, cur: Path) -> tuple[int, str]:
    status = compare.main([str(base), str(cur)])
    out, err = capsys.readouterr()
    return status, out + err


def test_same_build_fresh_runs_pass(runs, capsys):
    status, out = _compare(capsys, runs["base"], runs["same1"])
    assert status == 0, out
    assert out.strip().splitlines()[-1].startswith("OK: no regression")


def _meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


def test_injected_delay_fails_naming_latency(runs, capsys):
    assert (_meta(runs["delay"]).get("inject") or {}).get("delay_ms") == 2, "inject not recorded"
    status, out = _compare(capsys, runs["base"], runs["delay"])
    last = out.strip().splitlines()[-1]
    assert status == 1, out
    for transport in ("longpoll", "websocket"):
        # Either median may miss on a busy machine (one disturbed baseline repeat makes the
        # repeats overlap); the delay must show in at least one latency median per transport.
        assert f"{transport} lat_p50_ms +" in last or f"{transport} sent_p50_ms +" in last, out


def test_injected_padding_fails_naming_bytes(runs, capsys):
    assert (_meta(runs["pad"]).get("inject") or {}).get("pad_bytes") == 100, "inject not recorded"
    status, out = _compare(capsys, runs["base"], runs["pad"])
    last = out.strip().splitlines()[-1]
    assert status == 1, out
    for transport in ("longpoll", "websocket"):
        assert f"{transport} bytes_down_per_msg +" in last, out
