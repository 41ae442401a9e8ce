"""The A/B gate (``python -m duplexbench ab BASE``): compares like with like.

A committed baseline was recorded on another machine, at another time; scaling it by a
calibration ratio (``compare --normalize``) corrects a uniform speed factor at best. The A/B
mode that careful benchmark CI uses removes the machine from the question instead:

1. ``BASE`` (any commit-ish: ``origin/main``, a tag, a hash) is checked out beside the current
   tree with ``git worktree add --detach`` into a temporary directory (removed afterwards).
2. Both versions' **servers** run on this machine, from their own trees, with this
   interpreter; the **load generator, runner and statistics are the current ones** for both
   (one measuring instrument). A base tree whose servers need other dependencies or options
   fails before anything is measured, with the server's own error.
3. The points are **interleaved**: every load point of every repeat is measured for A (base)
   and B (current) back to back, A first in even repeats and B first in odd ones (ABBA), so
   drifting machine load and order effects fall on both sides alike.
4. ``compare`` judges the two runs (:mod:`~duplexbench.compare.runs`, ``paired=True``): consistency
   pair by pair (``stats.compare_paired``), tails gated where each side's own repeats show them
   stable (``stats.tail_is_stable``), points whose validity cannot carry a verdict not judged
   (docs/regression.md).

Exit status: 0 no regression, 1 regression (the last line names metric and transport; a point
that fails only in the current version is one too), 2 cannot compare (unknown BASE, base
servers that do not start, a base point that failed), 130 interrupted. ``DUPLEXBENCH_INJECT_*``
reach the current version's servers only: ``DUPLEXBENCH_INJECT_DELAY_MS=2 make ci-bench
BASE=HEAD`` is the gate's self-test.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import procs
from ..console import Console
from ..contract import Transport
from ..extensions import point_extensions
from ..procs.server import ServerError, ServerProcess
from ..runner.outcome import PointResult
from ..runner.session import Session
from ..runner.target import SpawnedTarget, stop_server
from ..scenario import Scenario

__all__ = ["ABError", "DEFAULT_SCENARIO", "EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_OK",
           "EXIT_REGRESSION", "INJECT_VARS", "MAX_CONSECUTIVE_FAILURES", "Side", "abba",
           "base_tree", "failure_verdict", "interleave", "repo_root", "resolve_commit",
           "run_ab", "side_session"]

DEFAULT_SCENARIO = "scenarios/ab.toml"
EXIT_OK, EXIT_REGRESSION, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
#: As in the runner: three failed points in a row mean a broken build, not load.
MAX_CONSECUTIVE_FAILURES = 3
#: Blank (= off) in the base servers' environment: an injected regression is the current one's.
INJECT_VARS = ("DUPLEXBENCH_INJECT_DELAY_MS", "DUPLEXBENCH_INJECT_PAD_BYTES",
               "DUPLEXBENCH_INJECT_CPU_US")


class ABError(Exception):
    """The A/B run cannot start or cannot be judged; the message says why (exit 2)."""


# ---------------------------------------------------------------------------
# git


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise ABError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def repo_root(start: Path) -> Path:
    try:
        return Path(_git(start, "rev-parse", "--show-toplevel"))
    except (ABError, OSError) as exc:
        raise ABError(f"A/B mode needs a git checkout: {exc}") from None


def resolve_commit(repo: Path, rev: str) -> str:
    """Full hash of ``rev`` (a branch, ``origin/main``, a tag, a hash), or ABError."""
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except ABError:
        hint = (" (a shallow CI checkout lacks it: fetch it, e.g. actions/checkout with "
                "fetch-depth: 0)" if "/" in rev else "")
        raise ABError(f"BASE {rev!r} is not a commit in {repo}{hint}") from None


@contextlib.contextmanager
def base_tree(repo: Path, commit: str) -> Iterator[Path]:
    """The base commit checked out (detached) in a temporary directory, removed afterwards."""
    holder = Path(tempfile.mkdtemp(prefix="duplexbench-ab-"))
    tree = holder / "base"
    try:
        _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        yield tree
    finally:
        with procs.shielded(redeliver=False):
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo,
                           capture_output=True, timeout=120)
            shutil.rmtree(holder, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True,
                           timeout=120)


# ---------------------------------------------------------------------------
# The two sides


@dataclass
class Side:
    """A (base) or B (current): its session and what it produced."""

    name: str  # "A" or "B"
    role: str  # "base" or "current"
    session: Session

    @property
    def results(self) -> list[PointResult]:
        return self.session.results

    @property
    def failures(self) -> list[PointResult]:
        return [r for r in self.results if not r.measured]


def check_base_servers(tree: Path, scenario: Scenario, short: str) -> None:
    """Start the base tree's server once: missing dependencies or options fail here, clearly."""
    mount = Transport(scenario.transports[0]).server_mount
    server = ServerProcess(mount, args=scenario.server.to_args(), src=str(tree),
                           env={v: "" for v in INJECT_VARS}, startup_timeout=30.0)
    try:
        server.start()
    except ServerError as exc:
        lines = "\n".join(str(exc).strip().splitlines()[-8:])
        raise ABError(
            f"the base commit's servers ({short}) do not start with this environment "
            f"({sys.executable}). They may need other dependencies or not know an option "
            f"this scenario passes ({' '.join(scenario.server.to_args()) or 'none'}); install "
            f"what they need or choose a newer BASE. Their output:\n{lines}") from None
    finally:
        stop_server(server)


def side_session(scenario: Scenario, run_dir: Path, console: Console, *, command: str,
                 argv: Sequence[str], env: dict[str, str] | None,
                 src: Path | None = None) -> Session:
    """One side's run: its own server (from ``src``, else this tree) with ``env``, pinned to
    the server core, and this tree's load generator."""
    plan = procs.plan_affinity()
    target = SpawnedTarget(args=scenario.server.to_args(), cpu=plan.server, env=env,
                           src=str(src) if src is not None else None)
    return Session(scenario, run_dir, console=console, command=command, argv=argv,
                   target=target, loadgen_procs=scenario.engine_options.get("loadgen_procs"),
                   extensions=point_extensions(scenario))


def _session(scenario: Scenario, out: Path, console: Console, role: str, argv: Sequence[str],
             src: Path | None) -> Session:
    # The base's injection variables are blanked (an injected regression is the current's);
    # the current side keeps this environment as is, an unset variable unset, as in a plain
    # run: a tree may set its own defaults (the tests' child commit does, with setdefault).
    env = {v: "" for v in INJECT_VARS} if src is not None else None
    return side_session(scenario, out / role, console, command="ab", argv=argv, env=env, src=src)


def run_ab(repo: Path, base_rev: str, scenario: Scenario, out: Path, console: Console,
           argv: Sequence[str] = ()) -> tuple[Side, Side, str]:
    """Measure base and current interleaved into ``out/base`` and ``out/current``.

    Returns the two sides and a reason when the run stopped early ("" otherwise).
    """
    commit = resolve_commit(repo, base_rev)
    head = _git(repo, "rev-parse", "HEAD")
    dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no"))
    short = commit[:10]
    points = scenario.points()
    with base_tree(repo, commit) as tree:
        console.info(f"A = base {base_rev} ({short}) from {tree}; "
                     f"B = current {head[:10]}{' + uncommitted changes' if dirty else ''}")
        check_base_servers(tree, scenario, short)
        a = Side("A", "base", _session(scenario, out, console, "base", argv, tree))
        b = Side("B", "current", _session(scenario, out, console, "current", argv, None))
        info = {"base": {"rev": base_rev, "commit": commit},
                "current": {"commit": head, "dirty": dirty},
                "order": "each point A and B back to back; A first in even repeats (ABBA)",
                "load_generator": "the current tree's, for both sides"}
        for side in (a, b):
            side.session.start()
            side.session.writer.meta["ab"] = {**info, "role": side.role}
        a.session.writer.meta["git"] = {"commit": commit, "dirty": False, "rev": base_rev}
        try:
            stopped = interleave((a, b), points, console)
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: both runs say so, then go
            with procs.shielded(redeliver=False):
                for side in (a, b):
                    side.session.finish("incomplete", f"{exc or 'interrupted'} (A/B run)")
            raise
        for side in (a, b):
            bad = side.failures
            status = "failed" if bad or stopped else "complete"
            reason = stopped or (f"{len(bad)} point(s) failed; first: {bad[0].point.label}: "
                                 f"{bad[0].reason}" if bad else "")
            with procs.shielded(redeliver=False):
                side.session.finish(status, reason)
    return a, b, stopped


def abba(point, sides: Sequence[Side]) -> list[Side]:
    """A first in even repeats, B first in odd ones (the A/B gate's order)."""
    return list(sides) if point.repeat % 2 == 0 else list(reversed(sides))


def interleave(sides: Sequence[Side], points: Sequence, console: Console,
               order: Callable[[object, Sequence[Side]], list[Side]] = abba) -> str:
    """Each point for every side back to back, in ``order(point, sides)``; "" or why it
    stopped. Shared by the A/B gate (two sides, ABBA) and gate-power (a base and its cases)."""
    in_a_row = 0
    total = len(sides) * len(points)
    for number, point in enumerate(points):
        for k, side in enumerate(order(point, sides)):
            console.info(f"{side.name} ({side.role}):")
            result = side.session.run_point(point, len(sides) * number + k + 1, total)
            in_a_row = 0 if result.measured else in_a_row + 1
        if in_a_row >= MAX_CONSECUTIVE_FAILURES:
            return f"stopped after {in_a_row} failed points in a row"
    return ""


def failure_verdict(a: Side, b: Side, stopped: str) -> tuple[int, str]:
    """Failed points decide before any statistics: whose fault, and what it means."""
    if a.failures:
        first = a.failures[0]
        return EXIT_INPUT, (f"cannot compare: the base version failed {len(a.failures)} point(s); "
                            f"first: {first.point.label}: {first.reason}")
    if b.failures:
        names = sorted({r.point.transport for r in b.failures})
        first = b.failures[0]
        return EXIT_REGRESSION, ("REGRESSION: " + "; ".join(f"{t} point failed in the current "
                                                          "version only" for t in names)
                                 + f" (first: {first.point.label}: {first.reason})")
    if stopped:
        return EXIT_INPUT, f"cannot compare: {stopped}"
    return EXIT_OK, ""
