"""N complete runs back to back, each its own `python -m duplexbench run` process.

A rerun is what a user does: a new harness process, which starts new servers
and load generators, so nothing (an interpreter's warm caches, a server's
memory) carries over from one run to the next. Each run is spawned through
procs (its own session, tracked, dying with us); Ctrl-C reaches reproduce, which
stops the current run (it writes meta.json ``incomplete``) and keeps the runs
that finished. ``lock``: a file held (flock) for the length of each run, so on a
shared machine other measurements wait between runs, not for the whole series.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import procs

__all__ = ["RunOutcome", "run_command", "held_lock", "run_series", "judged_outcomes",
           "read_record"]


@dataclass(frozen=True)
class RunOutcome:
    """One run of the series: where, its exit code, how long it took."""

    label: str  # "run-1"
    path: Path
    exit_code: int | None  # None: interrupted before it ended
    seconds: float
    waited_s: float = 0.0  # for the lock

    @property
    def complete(self) -> bool:
        meta = self.path / "meta.json"
        try:
            return json.loads(meta.read_text()).get("status") == "complete"
        except (OSError, ValueError):
            return False


def run_command(scenario: str, out: Path, passthrough: Sequence[str]) -> list[str]:
    """The command line of one run, as a user would type it."""
    return [sys.executable, "-m", "duplexbench", "run", scenario, "--out", str(out),
            *passthrough]


@contextlib.contextmanager
def held_lock(path: Path | None, on_wait: Callable[[], None]) -> Iterator[float]:
    """Hold ``path`` (flock, exclusive) inside the block; yields the seconds waited."""
    if path is None:
        yield 0.0
        return
    with open(path, "a+") as handle:
        start = time.monotonic()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - start
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _one(label: str, command: list[str], path: Path, log: Path) -> tuple[int | None, bool]:
    """Run one child to its end (exit code) or until Ctrl-C (None, True)."""
    with open(log, "w", encoding="utf-8") as output:
        child = procs.spawn(command, name=f"reproduce {label}", stdout=output,
                            stderr=subprocess.STDOUT)
        try:
            return child.wait(), False
        except KeyboardInterrupt:
            with procs.shielded(redeliver=False):
                child.stop(timeout=30)  # SIGTERM: the run marks itself incomplete
            return None, True
        finally:
            procs.untrack(child.pid)


def run_series(scenario: str, out: Path, runs: int, passthrough: Sequence[str], *,
               lock: Path | None = None,
               say: Callable[[str], None] = print) -> tuple[list[RunOutcome], bool]:
    """Run ``runs`` runs into ``out/run-1`` … ; (the outcomes, interrupted?)."""
    outcomes: list[RunOutcome] = []
    for index in range(1, runs + 1):
        label = f"run-{index}"
        path = out / label
        command = run_command(scenario, path, passthrough)
        try:
            with held_lock(lock, lambda: say(f"{label}: waiting for {lock} ...")) as waited:
                say(f"{label}/{runs}: {' '.join(command[1:])}")
                start = time.monotonic()
                code, interrupted = _one(label, command, path, out / f"{label}.log")
        except KeyboardInterrupt:  # while waiting for the lock
            return outcomes, True
        outcome = RunOutcome(label, path, code, time.monotonic() - start, waited)
        outcomes.append(outcome)
        if interrupted:
            say(f"{label}: interrupted after {outcome.seconds:.0f} s; keeping the "
                f"{len(outcomes) - 1} run(s) that finished")
            return outcomes, True
        say(f"{label}: exit {code} after {outcome.seconds:.0f} s"
            + (f" (waited {waited:.0f} s for the lock)" if waited >= 1 else "")
            + ("" if outcome.complete else " - not complete, left out of the comparison")
            + f"; log {out / (label + '.log')}")
    return outcomes, False


def judged_outcomes(dirs: Sequence[Path]) -> list[RunOutcome]:
    """Existing runs to judge, labelled by their directory's name, or by more of its path
    where two names are the same (runs of two series: the judge tells runs apart by label)."""
    names = [path.name for path in dirs]
    labels = [name if name != "latest" and names.count(name) == 1
              else f"{path.parent.name}/{name}" for path, name in zip(dirs, names)]
    if len(set(labels)) < len(labels):
        labels = [str(path) for path in dirs]
    return [RunOutcome(label, path, None, 0.0) for label, path in zip(labels, dirs)]


def read_record(path: Path, recompute: bool = False) -> dict:
    """A run's findings.json (the report wrote it), or computed from its results
    (always with ``recompute``: runs judged later, perhaps by newer code)."""
    found = path / "findings.json"
    if found.is_file() and not recompute:
        try:
            return json.loads(found.read_text(encoding="utf-8"))
        except ValueError:
            pass  # a half-written file from an interrupted report: compute it again
    from ..report.load import load_run_dir
    from ..report.rerun import run_record

    return run_record(load_run_dir(path))[1]
