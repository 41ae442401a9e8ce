"""Real A/B runs shared by test_ab.py and test_e2e.py: each is made once per session.

A clone of this working tree (committed or not) holds two commits, tagged ``parent`` and
``child``; the child makes the servers' injected delay default to 2 ms and their injected CPU
to 100 us per delivered message (``servers/__init__.py`` sets ``DUPLEXBENCH_INJECT_DELAY_MS``
/ ``_CPU_US`` unless already set: a real change to the server's code, seen only by the child's
servers, which report it in ``/healthz`` and so in meta.json ``inject``). Two A/B runs are made
from it: the child against its parent (must fail, naming latency and server CPU) and the
parent against itself (must pass).
The parent against itself is tiny (two transports, 5 subscribers, 1 s points, 4 repeats per
side: one disturbed repeat must not decide, the tails can be checked for stability, and an
even count balances the order of the sides, ABBA: with 3, two pairs of one order and one of
the other, the parent against itself was once flagged +9.5 % server CPU on long polling on a
heavily loaded machine), ~45 s alone on the machine.
The child's run is the A/B profile's point (10 subscribers, 100 messages/s) on the four
transports with 1 s points and 3 repeats, ~1.2 minutes: its two changes are judged in one run
(they used to be two runs of ~1 minute each), the delay on the latency medians, the CPU on
server CPU per message, whose per-transport verdict needs the pairs (docs/regression.md,
"Server cost"; 4 points x 2 degrees of freedom pooled). A change this large needs no balanced
order: the even count that keeps the parent against itself quiet is not needed to catch it.
test_ab.py judges them as ``duplexbench ab`` did; test_e2e.py feeds their directories to the
plain ``compare`` gate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests._scenarios import tiny_scenario
from tests._timeouts import scaled

__all__ = ["ABResult", "CHILD_SCENARIO_NAME", "ROOT", "SCENARIO", "SCENARIO_NAME", "git",
           "hidden_by_disturbance", "make_clone", "run_ab"]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_NAME = "ab-tiny.toml"

#: Two transports at the extremes of cost (a request per message vs a frame per message): the
#: gate pools the pairs' noise over the points, and one point's 3 degrees of freedom are too
#: few (long polling alone, +9.7 % server CPU per message flagged in a fresh clone's make test).
SCENARIO = tiny_scenario("ab-tiny", transports=["longpoll", "websocket"], clients=5, rate=200,
                         duration_s=1.0, drain_s=0.3, repeats=4, seed=1,
                         tables={"server": {"uvloop": True}})

CHILD_SCENARIO_NAME = "ab-child.toml"
#: The A/B profile's point (scenarios/ab.toml), shorter and with 3 repeats, on every transport.
CHILD_SCENARIO = tiny_scenario("ab-child", transports=["longpoll", "sse", "ndjson", "websocket"],
                               clients=10, rate=100, warmup_s=0.5, duration_s=1.0, drain_s=0.3,
                               repeats=3, seed=1, arrival="uniform",
                               tables={"server": {"uvloop": True}})

#: 2 ms before every delivery (4-5x a point's latency median here) and 100 us of CPU per
#: delivered message (2-3x a stream's own cost here): this test checks that the gate names
#: latency on every transport it shows in and server CPU per message on each stream, with 3
#: pairs to keep `make test` short. How small a change the gate catches, and how often,
#: is measured by benchmark commands on the full profile (`python -m duplexbench ab HEAD~1`
#: with the issue's 20 us; `gate-power`), not here. 40 us with 6 pairs took ~2 minutes of the
#: suite, alone on the machine.
CHILD_CHANGE = ('\n\n# Test commit: every delivery 2 ms late and 100 us of CPU per delivered '
                'message (regressions the A/B gate must flag).\nimport os as _os\n'
                '_os.environ.setdefault("DUPLEXBENCH_INJECT_DELAY_MS", "2")\n'
                '_os.environ.setdefault("DUPLEXBENCH_INJECT_CPU_US", "100")\n')


@dataclass(frozen=True)
class ABResult:
    """One ``duplexbench ab`` run: exit status, output (stdout last) and its directory."""

    status: int
    output: str
    out: Path  # holds base/, current/, compare.md, compare.json


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=duplexbench-test", "-c", "user.email=test@duplexbench.invalid",
         *args], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


def make_clone(root: Path) -> Path:
    """A repository under ``root`` with commits tagged parent and child (+2 ms, +100 us)."""
    repo = root / "repo"
    files = git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file() and not name.startswith("results/"):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    (repo / SCENARIO_NAME).write_text(SCENARIO)
    (repo / CHILD_SCENARIO_NAME).write_text(CHILD_SCENARIO)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "parent")
    git(repo, "tag", "parent")
    with open(repo / "servers" / "__init__.py", "a", encoding="utf-8") as init:
        init.write(CHILD_CHANGE)
    git(repo, "commit", "-qam", "child: 2 ms before and 100 us of CPU per delivery")
    git(repo, "tag", "child")
    return repo


def run_ab(repo: Path, base: str, out: Path, scenario: str = SCENARIO_NAME,
           timeout: float = 200) -> ABResult:
    """``duplexbench ab BASE`` in ``repo`` as checked out; DUPLEXBENCH_INJECT_* cleared."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUPLEXBENCH_INJECT_")}
    done = subprocess.run(
        [sys.executable, "-m", "duplexbench", "ab", base, "--scenario", scenario,
         "--out", str(out), "--quiet"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=scaled(timeout))
    return ABResult(done.returncode, done.stderr + done.stdout, out)


def new_root(prefix: str) -> Path:
    """Our own temp dir, not tmp_path_factory: concurrent pytest sessions of the same user
    prune each other's old basetemp dirs, and these runs must outlive minutes of tests."""
    return Path(tempfile.mkdtemp(prefix=prefix))


#: The latency medians the delay must show in (one of them per transport).
MEDIANS = ("lat_p50_ms", "sent_p50_ms")


def hidden_by_disturbance(result: ABResult) -> list[str]:
    """Transports where neither latency median was called worse and the gate said why it
    could not see: a disturbed repeat named there (compare/disturbed.py), or the medians
    "within the pairs' noise" it measured (for this 5x change, over 60 % of a pair).

    The child's run shares the machine with other tests (it is not exclusive: alone it would
    add about a minute to ``make test``), and with 3 pairs one repeat disturbed far
    enough hides the +2 ms (seen in CI: WebSocket's base p90 35 ms against ~1 ms, "same").
    Such a run is made again, once (``ab_child``); a miss the gate does not explain so fails.
    """
    path = result.out / "compare.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    explained = {d["transport"] for d in data.get("disturbed", [])}
    explained |= {r["transport"] for r in data["rows"] if r["metric"] in MEDIANS
                  and str(r.get("reason") or "").startswith("within the pairs' noise")}
    caught = {r["transport"] for r in data["rows"]
              if r["metric"] in MEDIANS and r["status"] == "worse"}
    return sorted(explained - caught)
