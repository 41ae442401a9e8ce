"""The A/B gate's measured power (``python -m duplexbench gate-power``): run the gate on
known changes, many times, and count how often it calls them.

A gate whose error rates are unknown is a guess. This measures them on this machine with
this profile: each *round* runs one interleaved session of this tree's servers with
nothing injected (the base, A) and one side per *case* (B), each a ``DUPLEXBENCH_INJECT_*``
setting of the same tree (servers/README.md): ``aa`` (nothing: the A/A false-alarm case),
``cpu:N`` (N us of CPU per delivered message), ``delay:N`` (N ms per delivery), ``pad:N``
(N bytes per envelope). Every case is then judged against the base by exactly the gate's
code (:func:`~duplexbench.compare.runs.compare_runs`, ``paired=True``, and the failed-point
rule of :func:`~duplexbench.compare.ab.failure_verdict`), so a round gives one A/A verdict
and one verdict per injection. No worktree: base and cases are this tree.

Order within a point: a Williams design over the base and the cases (``point_order``): over
the repeats every side, the base too, runs at every position and after every other side
equally often, so a position effect is shared out (with one case it is the gate's ABBA); a
case is at most k points away from its base, where the gate's B is next to its A
(docs/regression.md says what that means for the figures).

Each round is written as it finishes (``round-NNN.json``, beside its run directories), so
Ctrl-C or a crash leaves every completed round usable and ``--resume`` continues; the table
is :mod:`~duplexbench.compare.power_table`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .. import procs
from ..console import Console
from ..measure.results import atomic_write_json, utc_now
from ..scenario import Scenario
from .ab import (
    EXIT_OK,
    EXIT_REGRESSION,
    INJECT_VARS,
    Side,
    failure_verdict,
    interleave,
    side_session,
)
from .model import Comparison, InputError
from .runs import compare_runs, resolve_run

__all__ = ["CASE_HELP", "DEFAULT_CASES", "Case", "PowerError", "claim_round", "completed_rounds",
           "parse_case", "point_order", "round_dir", "round_file", "run_round", "williams_rows"]

#: The injections: name in a case -> (environment variable, unit).
KINDS = {"cpu": ("DUPLEXBENCH_INJECT_CPU_US", "us"),
         "delay": ("DUPLEXBENCH_INJECT_DELAY_MS", "ms"),
         "pad": ("DUPLEXBENCH_INJECT_PAD_BYTES", "B")}
#: A/A, three CPU sizes around +10 % of the A/B profile's server CPU per delivery (a stream
#: costs ~40 us per delivery there on a quiet 2-core machine, ~90 us on a busy one; long
#: polling ~2.5x that: docs/regression.md), the delays and the pad the gate was built for.
DEFAULT_CASES = ("aa", "cpu:5", "cpu:10", "cpu:20", "delay:1", "delay:2", "pad:100")
CASE_HELP = ("aa (nothing injected), cpu:US (CPU per delivered message), delay:MS (per "
             "delivery), pad:BYTES (per envelope)")


class PowerError(Exception):
    """Bad cases or an output directory that cannot be resumed; the message says why."""


@dataclass(frozen=True)
class Case:
    """One change to judge: ``kind`` none | cpu | delay | pad, ``size`` in the kind's unit."""

    name: str
    kind: str
    size: float = 0.0

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: every injection blank except this case's."""
        env = {var: "" for var in INJECT_VARS}
        if self.kind in KINDS:
            env[KINDS[self.kind][0]] = f"{self.size:g}"
        return env

    @property
    def label(self) -> str:
        if self.kind == "none":
            return "A/A (nothing injected)"
        unit = KINDS[self.kind][1]
        what = {"cpu": "CPU per delivery", "delay": "per delivery", "pad": "per message"}
        return f"+{self.size:g} {unit} {what[self.kind]}"

    @property
    def slug(self) -> str:
        """A directory name: aa, cpu4, delay1, pad100."""
        return self.name.replace(":", "").replace(".", "_")


def parse_case(text: str) -> Case:
    """``aa`` | ``cpu:US`` | ``delay:MS`` | ``pad:BYTES`` -> Case, or PowerError naming it."""
    text = text.strip().lower()
    if text in ("aa", "a/a", "none"):
        return Case("aa", "none")
    kind, _, value = text.partition(":")
    if kind not in KINDS or not value:
        raise PowerError(f"case {text!r}: expected {CASE_HELP}")
    try:
        size = float(value)
    except ValueError:
        raise PowerError(f"case {text!r}: {value!r} is not a number") from None
    if not size > 0 or (kind in ("cpu", "pad") and size != int(size)):
        raise PowerError(f"case {text!r}: expected a positive {'integer' if kind != 'delay' else 'number'}")
    return Case(f"{kind}:{size:g}", kind, size)


def round_dir(out: Path, number: int) -> Path:
    return out / f"round-{number:03d}"


def round_file(out: Path, number: int) -> Path:
    """Written when the round is done and judged: its presence means "complete"."""
    return out / f"round-{number:03d}.json"


def claim_round(out: Path, number: int) -> Path | None:
    """Mark round ``number`` as being run by this process (``round-NNN.claim``, created
    exclusively, holding the pid), or None when a live process holds it: several gate-power
    processes can then share one --out, each running rounds the others have not taken.
    A claim whose process is gone (killed, machine restarted) is taken over."""
    path = out / f"round-{number:03d}.claim"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text(encoding="ascii").strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and psutil.pid_exists(holder):
                return None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(str(os.getpid()))
        return path
    return None


def completed_rounds(out: Path) -> list[dict]:
    """Every finished round's record, in order (unreadable files are skipped, not trusted)."""
    records = []
    for path in sorted(out.glob("round-*.json")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return records


def williams_rows(n: int) -> list[list[int]]:
    """A Williams design for n arms: each arm takes each position equally often and follows
    every other arm equally often (n rows for even n, 2n for odd n: the square and its mirror).
    Row 0 is 0, 1, n-1, 2, n-2, ...; row i adds i to each (mod n).
    """
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    rows = [[(a + i) % n for a in first] for i in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


def point_order(seed: int, point, base, cases: Sequence) -> list:
    """The base and the cases of one repeat of a point, in the order they run: row
    ``repeat`` of a Williams design over [base, cases in a seeded order].

    Measured: the side that runs second of two is ~5 % cheaper per delivery (A/A, base always
    first), so a fixed order would read as a change. Mirroring around a base kept in the middle
    (the order before 2026-12-05) is not enough either: with two cases, in 6 rounds x 24 pairs
    the base in the middle cost 3.5 % more per delivery than its neighbours (A/A read -3.5 %,
    on every transport), which biased every case's measured change by as much. Rotated, every
    side (the base too) runs at every position and after every other side equally often over
    the rows, so a position effect is shared out instead of landing on the base.
    """
    arms = [base, *cases]
    order = list(range(1, len(arms)))
    random.Random(f"{seed}:{point.key}").shuffle(order)
    arms = [arms[0]] + [arms[i] for i in order]
    rows = williams_rows(len(arms))
    return [arms[i] for i in rows[point.repeat % len(rows)]]


@dataclass
class _Round:
    number: int
    base: Side
    cases: dict[str, Side] = field(default_factory=dict)


def _measured(comp: Comparison) -> dict:
    """Per transport, what the gate saw of the four figures the injections move."""
    wanted = ("server_cpu_us_per_msg", "client_cpu_us_per_msg", "lat_p50_ms", "sent_p50_ms",
              "bytes_down_per_msg")
    out: dict[str, dict] = {}
    for row in comp.rows:
        if row.metric in wanted and row.verdict is not None:
            v = row.verdict
            out.setdefault(row.transport, {})[row.metric] = {
                "baseline": v.baseline, "current": v.current, "change": v.change,
                "delta": v.delta, "status": row.status, "gated": row.gated}
    return out


def judge_case(base: Side, case: Side, stopped: str, alpha: float) -> dict:
    """The gate's verdict on one case, as ``duplexbench ab`` would give it."""
    code, text = failure_verdict(base, case, stopped)
    if code != EXIT_OK:
        return {"exit": code, "flagged": code == EXIT_REGRESSION, "verdict": text,
                "regressions": [], "measured": {}}
    try:
        comp = compare_runs(resolve_run(base.session.run_dir), resolve_run(case.session.run_dir),
                            alpha=alpha, paired=True)
    except InputError as exc:
        return {"exit": 2, "flagged": False, "verdict": f"cannot compare: {exc}",
                "regressions": [], "measured": {}}
    regressions = [{"transport": r.transport, "metric": r.metric,
                    "change": r.verdict.change if r.verdict else None,
                    "reason": r.verdict.reason if r.verdict else ""} for r in comp.regressions]
    unjudged = sorted({f"{r.transport} ({r.why})" for r in comp.rows if r.status == "unjudged"})
    return {"exit": EXIT_REGRESSION if regressions else EXIT_OK, "flagged": bool(regressions),
            "verdict": "REGRESSION" if regressions else "OK", "regressions": regressions,
            "unjudged": unjudged, "measured": _measured(comp)}


def run_round(number: int, scenario: Scenario, cases: Sequence[Case], out: Path,
              console: Console, argv: Sequence[str] = (), seed: int = 1,
              alpha: float = 0.01) -> dict:
    """One interleaved session (base + every case), judged; writes and returns its record.

    A round directory left by an interrupted run is removed first: a round counts only
    when it finished.
    """
    where = round_dir(out, number)
    if where.exists():
        shutil.rmtree(where)
    started = utc_now()
    base = Side("A", "base", side_session(scenario, where / "base", console, command="gate-power",
                                          argv=argv, env=Case("aa", "none").env))
    sides = [Side(c.name, "current", side_session(scenario, where / c.slug, console,
                                                  command="gate-power", argv=argv, env=c.env))
             for c in cases]
    info = {"round": number, "seed": seed,
            "order": "per point: a Williams design over the base and the cases (rows by repeat)",
            "load_generator": "this tree's, for every side"}
    for side, case in [(base, Case("aa", "none")), *zip(sides, cases)]:
        side.session.start(calibrate=side is base)
        side.session.writer.meta["ab"] = {**info, "role": side.role}
        side.session.writer.meta["gate_power"] = {**info, "case": case.name, "label": case.label}
    order = {}

    def ordered(point, _sides):
        chosen = point_order(seed * 1000 + number, point, base, sides)
        order[len(order)] = [s.name for s in chosen]
        return chosen

    try:
        stopped = interleave([base, *sides], scenario.points(), console, ordered)
    except KeyboardInterrupt as exc:
        with procs.shielded(redeliver=False):
            for side in (base, *sides):
                side.session.finish("incomplete", f"{exc or 'interrupted'} (gate-power)")
        raise
    for side in (base, *sides):
        bad = side.failures
        status = "failed" if bad or stopped else "complete"
        reason = stopped or (f"{len(bad)} point(s) failed; first: {bad[0].point.label}: "
                             f"{bad[0].reason}" if bad else "")
        with procs.shielded(redeliver=False):
            side.session.finish(status, reason)
    verdicts = {case.name: {"kind": case.kind, "size": case.size, "label": case.label,
                            **judge_case(base, side, stopped, alpha)}
                for case, side in zip(cases, sides)}
    record = {"round": number, "started_at": started, "ended_at": utc_now(),
              "scenario": scenario.name, "seed": seed, "alpha": alpha,
              "order": [order[k] for k in sorted(order)], "cases": verdicts}
    atomic_write_json(round_file(out, number), record)
    return record
