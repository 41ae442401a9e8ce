"""The A/B gate in a clone: a commit adding 2 ms before each delivery fails against its parent,
naming metric and transport; the parent against itself passes; a bad BASE is refused.

The clone is a fresh git repository holding this working tree's files (so the test checks the
code as it is, committed or not): commit "parent", then commit "child", which makes the
servers' injected delay default to 2 ms (``servers/__init__.py`` sets
``DUPLEXBENCH_INJECT_DELAY_MS`` unless already set: a real change to the server's code, seen
only by the child's servers). Each A/B run is tiny: two transports, 5 subscribers, 1 s points,
3 repeats per side (one disturbed repeat must not decide; 3 also lets the tails be
checked for stability), ~50 s on a busy 2-core machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests._timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]

#: Each A/B run takes ~50 s here; pytest's default 120 s timeout is too close on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(240))]

SCENARIO = """\
name = "ab-tiny"
transports = ["longpoll", "websocket"]
pattern = "fanout"
clients = [5]
rate = [200]
payload_bytes = [64]
warmup_s = 0.5
duration_s = 1.0
drain_s = 0.3
repeats = 3
seed = 1
[server]
uvloop = true
"""

CHILD_CHANGE = ('\n\n# Test commit: every delivery 2 ms late (a regression the A/B gate must flag).\n'
                'import os as _os\n_os.environ.setdefault("DUPLEXBENCH_INJECT_DELAY_MS", "2")\n')


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=duplexbench-test", "-c", "user.email=test@duplexbench.invalid",
         *args], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def clone():
    """A repository with commits parent and child (child = +2 ms per delivery)."""
    root = Path(tempfile.mkdtemp(prefix="duplexbench-ab-test-"))
    repo = root / "repo"
    try:
        files = _git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
        for name in filter(None, files):
            source = ROOT / name
            if source.is_file() and not name.startswith("results/"):
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, repo / name)
        (repo / "ab-tiny.toml").write_text(SCENARIO)
        _git(repo, "init", "-q")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", "parent")
        with open(repo / "servers" / "__init__.py", "a", encoding="utf-8") as init:
            init.write(CHILD_CHANGE)
        _git(repo, "commit", "-qam", "child: 2 ms before each delivery")
        yield repo
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _ab(repo: Path, base: str, out: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUPLEXBENCH_INJECT_")}
    done = subprocess.run(
        [sys.executable, "-m", "duplexbench", "ab", base, "--scenario", "ab-tiny.toml",
         "--out", str(out), "--quiet"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=scaled(200))
    return done.returncode, done.stderr + done.stdout  # stdout last: it ends with the verdict


def _worktrees(repo: Path) -> int:
    return _git(repo, "worktree", "list").count("\n") + 1


def test_child_with_2ms_delay_fails_against_its_parent(clone, tmp_path):
    status, out = _ab(clone, "HEAD~1", tmp_path / "ab")
    last = out.strip().splitlines()[-1]  # the verdict line ends the output
    assert status == 1, out[-4000:]
    assert last.startswith("REGRESSION:"), out[-4000:]
    for transport in ("longpoll", "websocket"):
        # The delay must show in a latency median of every transport, named in the last line.
        rows = "\n".join(line for line in out.splitlines() if line.startswith(transport)
                         and ("_p50_ms" in line or "_p90_ms" in line))
        assert f"{transport} lat_p50_ms +" in last or f"{transport} sent_p50_ms +" in last, \
            f"{last}\n{rows}"
    assert (tmp_path / "ab" / "compare.md").read_text().count("FAIL") >= 1
    assert _worktrees(clone) == 1, "the base worktree was not removed"


def test_parent_against_itself_passes(clone, tmp_path):
    _git(clone, "checkout", "-q", "HEAD~1")
    try:
        status, out = _ab(clone, "HEAD", tmp_path / "ab")
    finally:
        _git(clone, "checkout", "-q", "-")
    assert status == 0, out[-4000:]
    assert "OK: no regression" in out
    assert _worktrees(clone) == 1


def test_unknown_base_is_refused_clearly(clone, tmp_path):
    status, out = _ab(clone, "no-such-branch", tmp_path / "ab")
    assert status == 2 and "'no-such-branch' is not a commit" in out, out


def test_base_whose_servers_do_not_start_fails_clearly(clone, tmp_path):
    # A base commit whose servers need a module this environment lacks.
    _git(clone, "checkout", "-q", "-b", "needs-dep", "HEAD~1")
    with open(clone / "servers" / "__init__.py", "a", encoding="utf-8") as init:
        init.write("\nimport duplexbench_missing_dependency  # noqa\n")
    _git(clone, "commit", "-qam", "needs a dependency")
    _git(clone, "checkout", "-q", "-")
    status, out = _ab(clone, "needs-dep", tmp_path / "ab")
    assert status == 2, out[-3000:]
    assert "do not start with this environment" in out
    assert "duplexbench_missing_dependency" in out
    assert not (tmp_path / "ab" / "base" / "meta.json").exists()  # refused before measuring
