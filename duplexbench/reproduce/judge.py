"""Did a run's findings hold in the other runs? Did its intervals cover their figures?

Pure functions over findings.json records (report/rerun.py), so the logic is
tested on synthetic records and the command only adds processes around it.

- A **finding** of run i (kind ``compare``: a winner, a ratio, the interval it
  stated for a rerun's ratio) is checked against every other run j: the ratio j
  measured for the same pair, metric and load point is

  - ``held``: inside the interval run i stated (so the same winner);
  - ``moved``: the same winner, outside the interval;
  - ``contradicted``: the winner flipped (j's ratio below 1);
  - ``n/a``: run j has no figure for one of the two transports there.

- **Coverage** per metric: over every figure run i stated an interval for and
  every other run j that measured it, the share inside the interval.
- **Calibration** per metric and transport: the between-run standard deviation
  (log scale) left after each run's own sampling error, the figure
  report/calibration.py holds; two estimates: the moments (between-run variance minus mean within-run
  variance) and the one that makes the intervals cover ``LEVEL`` of these runs'
  pairs.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2

__all__ = [
    "RunRecord",
    "Check",
    "Judged",
    "OUTCOMES",
    "as_float",
    "figure_key",
    "pair_ratio",
    "outcome",
    "judge",
    "coverage",
    "calibration",
    "ratio_calibration",
    "verdict",
    "HOLD_ALL_SHARE",
    "MAX_CONTRADICTING",
]

OUTCOMES = ("held", "moved", "contradicted", "n/a")
#: The issue's bar: >= 95 % of findings hold in every other run ...
HOLD_ALL_SHARE = 0.95
#: ... and no finding is contradicted by this many other runs or more.
MAX_CONTRADICTING = 2
#: The suggested calibration is the between-run variance's upper confidence bound at this
#: one-sided level (a handful of runs estimates a variance loosely).
UPPER_BOUND = 0.9


def as_float(value) -> float:
    """findings.json numbers back to floats: null -> NaN, "inf" -> inf."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)  # "inf", "-inf"
    return float(value)


@dataclass(frozen=True)
class RunRecord:
    """One run as reproduce judges it: its label, exit code and findings.json."""

    label: str
    path: str
    exit_code: int | None
    record: dict = field(default_factory=dict)

    @property
    def findings(self) -> list[dict]:
        return [f for f in self.record.get("findings", []) if f.get("kind") == "compare"]

    @property
    def ties(self) -> list[dict]:
        return [f for f in self.record.get("findings", []) if f.get("kind") == "tie"]

    def figures(self) -> dict[tuple, dict]:
        return {figure_key(f["metric"], f["transport"], f["point"]): f
                for f in self.record.get("figures", [])}


def figure_key(metric: str, transport: str, point: dict) -> tuple:
    """The identity of a figure across runs: metric, transport and the load point."""
    axes = tuple(sorted((axis, None if value is None else round(float(value), 6))
                        for axis, value in (point or {}).items()))
    return metric, transport, axes


@dataclass(frozen=True)
class Check:
    """One finding against one other run."""

    other: str
    ratio: float  # the other run's worst / best
    outcome: str  # one of OUTCOMES


@dataclass(frozen=True)
class Judged:
    """One finding of one run and what the other runs measured."""

    run: str
    finding: dict
    checks: tuple[Check, ...]

    def count(self, outcome: str) -> int:
        return sum(c.outcome == outcome for c in self.checks)

    @property
    def held_all(self) -> bool:
        return bool(self.checks) and all(c.outcome == "held" for c in self.checks)


def pair_ratio(figures: dict[tuple, dict], finding: dict) -> float:
    """The other run's worst / best for the finding's pair (NaN when it lacks one)."""
    best = figures.get(figure_key(finding["metric"], finding["best"], finding["point"]))
    worst = figures.get(figure_key(finding["metric"], finding["worst"], finding["point"]))
    if best is None or worst is None:
        return math.nan
    b, w = as_float(best.get("value")), as_float(worst.get("value"))
    if math.isnan(b) or math.isnan(w):
        return math.nan
    if b <= 0:
        return math.inf if w > 0 else 1.0
    return w / b


def outcome(finding: dict, ratio: float) -> str:
    """held | moved | contradicted | n/a for a finding against another run's ratio."""
    if math.isnan(ratio):
        return "n/a"
    if ratio < 1:
        return "contradicted"
    lo, hi = as_float(finding.get("lo")), as_float(finding.get("hi"))
    if math.isnan(lo) or math.isnan(hi):  # no interval stated: the winner is all it says
        return "held" if ratio > 1 else "moved"
    return "held" if lo <= ratio <= hi else "moved"


def judge(runs: list[RunRecord]) -> list[Judged]:
    """Every finding of every run, checked against every other run."""
    figures = {run.label: run.figures() for run in runs}
    judged = []
    for run in runs:
        for finding in run.findings:
            checks = []
            for other in runs:
                if other.label == run.label:
                    continue
                ratio = pair_ratio(figures[other.label], finding)
                checks.append(Check(other.label, ratio, outcome(finding, ratio)))
            judged.append(Judged(run.label, finding, tuple(checks)))
    return judged


def coverage(runs: list[RunRecord]) -> dict[str, dict]:
    """Per metric: how many (run i's interval, run j's figure) pairs, how many covered."""
    out: dict[str, dict] = defaultdict(lambda: {"checked": 0, "covered": 0})
    for a, b in itertools.permutations(runs, 2):
        theirs = b.figures()
        for key, figure in a.figures().items():
            lo, hi = as_float(figure.get("lo")), as_float(figure.get("hi"))
            other = theirs.get(key)
            if other is None or math.isnan(lo) or math.isnan(hi):
                continue
            value = as_float(other.get("value"))
            if math.isnan(value):
                continue
            entry = out[key[0]]
            entry["checked"] += 1
            entry["covered"] += int(lo <= value <= hi)
    for entry in out.values():
        entry["rate"] = entry["covered"] / entry["checked"] if entry["checked"] else math.nan
    return dict(out)


def calibration(runs: list[RunRecord], z: float, level: float) -> dict[str, dict[str, dict]]:
    """Per metric and transport: the between-run log-sd beyond each run's own error.

    Over the figures of one transport measured by >= 2 runs (one per load point):
    ``between_sd`` the spread of the log figure between runs, ``within_sd`` the runs'
    own error, ``moments_sd`` the part of the first beyond the second, and
    ``for_level_sd`` the smallest sd that makes ``value x exp(±z sqrt(2 (se^2 + sd^2)
    / repeats))`` cover ``level`` of the ordered pairs of runs, and ``suggested_sd``
    the larger of that and the between-run part's upper confidence bound
    (``UPPER_BOUND``): the calibration these runs ask for (report/calibration.py).
    Transport ``*``: every transport pooled.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        for key, figure in run.figures().items():
            groups[key].append(figure)
    between: dict[tuple, list[float]] = defaultdict(list)
    within: dict[tuple, list[float]] = defaultdict(list)
    needed: dict[tuple, list[float]] = defaultdict(list)
    dofs: dict[tuple, int] = defaultdict(int)
    for (metric, transport, _), figures in groups.items():
        usable = [f for f in figures if as_float(f.get("value")) > 0]
        if len(usable) < 2:
            continue
        logs = np.log([as_float(f["value"]) for f in usable])
        se = [as_float(f.get("se_within")) for f in usable]
        se = [0.0 if math.isnan(s) else s for s in se]
        repeats = [max(1, int(f.get("repeats") or 1)) for f in usable]
        pairs = [max(0.0, repeats[i] * (abs(logs[j] - logs[i]) / (z * math.sqrt(2))) ** 2
                     - se[i] ** 2) for i, j in itertools.permutations(range(len(usable)), 2)]
        for who in (transport, "*"):
            dofs[(metric, who)] += len(usable) - 1
            between[(metric, who)].append(float(np.var(logs, ddof=1)))
            within[(metric, who)].append(float(np.mean([s * s / r for s, r in
                                                        zip(se, repeats)])))
            needed[(metric, who)] += pairs
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for (metric, who) in sorted(between):
        var_between, var_within = (float(np.mean(between[(metric, who)])),
                                   float(np.mean(within[(metric, who)])))
        # Few runs estimate a variance loosely: its upper confidence bound, over the
        # degrees of freedom of every figure's runs (chi-square), is what is suggested.
        dof = dofs[(metric, who)]
        upper = var_between * dof / chi2.ppf(1 - UPPER_BOUND, dof) if dof else math.nan
        for_level = math.sqrt(float(np.quantile(needed[(metric, who)], level,
                                                method="higher")))
        out[metric][who] = {
            "figures": len(between[(metric, who)]),
            "between_sd": math.sqrt(var_between),
            "within_sd": math.sqrt(var_within),
            "moments_sd": math.sqrt(max(0.0, var_between - var_within)),
            "for_level_sd": for_level,
            "suggested_sd": max(for_level, math.sqrt(max(0.0, upper - var_within))),
        }
    return dict(out)


def _log_figure(figure: dict | None) -> tuple[float, float, int] | None:
    """(log value, its own se, repeats) of a positive figure, else None."""
    if figure is None or not as_float(figure.get("value")) > 0 \
            or math.isinf(as_float(figure.get("value"))):
        return None
    se = as_float(figure.get("se_within"))
    return (math.log(as_float(figure["value"])), 0.0 if math.isnan(se) else se,
            max(1, int(figure.get("repeats") or 1)))


def ratio_calibration(runs: list[RunRecord], z: float, level: float) -> dict[str, dict]:
    """Per metric: the between-run log-sd of a ratio of two transports beyond the runs'
    own error (report/calibration.py ``RATIO_RERUN_SD``).

    Over every pair of transports at every load point measured by >= 2 runs: the log
    ratio per run, its spread between runs (``between_sd``), the runs' own error of it
    (``within_sd``, both figures' se added), the part beyond (``moments_sd``), the sd
    that makes ``ratio x exp(±z sqrt(2 (own + sd^2) / repeats))`` cover ``level`` of
    the ordered pairs of runs (``for_level_sd``) and ``suggested_sd``, the larger of
    that and the between-run part's upper confidence bound (chi-square over the pairs'
    degrees of freedom; pairs sharing a transport are not independent, so the bound is
    loose-side).
    """
    per_run = [run.figures() for run in runs]
    keys = {(m, t, axes) for figures in per_run for (m, t, axes) in figures}
    groups: dict[tuple, set] = defaultdict(set)
    for metric, transport, axes in keys:
        groups[(metric, axes)].add(transport)
    between: dict[str, list[float]] = defaultdict(list)
    within: dict[str, list[float]] = defaultdict(list)
    needed: dict[str, list[float]] = defaultdict(list)
    dofs: dict[str, int] = defaultdict(int)
    for (metric, axes), transports in groups.items():
        for a, b in itertools.combinations(sorted(transports), 2):
            logs, own, repeats = [], [], []
            for figures in per_run:
                fa, fb = (_log_figure(figures.get((metric, t, axes))) for t in (a, b))
                if fa is None or fb is None:
                    continue
                logs.append(fb[0] - fa[0])
                own.append(fa[1] ** 2 + fb[1] ** 2)
                repeats.append(min(fa[2], fb[2]))
            if len(logs) < 2:
                continue
            dofs[metric] += len(logs) - 1
            between[metric].append(float(np.var(logs, ddof=1)))
            within[metric].append(float(np.mean([o / r for o, r in zip(own, repeats)])))
            needed[metric] += [
                max(0.0, repeats[i] * (abs(logs[j] - logs[i]) / (z * math.sqrt(2))) ** 2
                    - own[i]) for i, j in itertools.permutations(range(len(logs)), 2)]
    out: dict[str, dict] = {}
    for metric in sorted(between):
        var_between, var_within = (float(np.mean(between[metric])),
                                   float(np.mean(within[metric])))
        dof = dofs[metric]
        upper = var_between * dof / chi2.ppf(1 - UPPER_BOUND, dof) if dof else math.nan
        for_level = math.sqrt(float(np.quantile(needed[metric], level, method="higher")))
        out[metric] = {
            "pairs": len(between[metric]),
            "between_sd": math.sqrt(var_between),
            "within_sd": math.sqrt(var_within),
            "moments_sd": math.sqrt(max(0.0, var_between - var_within)),
            "for_level_sd": for_level,
            "suggested_sd": max(for_level, math.sqrt(max(0.0, upper - var_within))),
        }
    return out


def verdict(judged: list[Judged], runs: int) -> dict:
    """The issue's bar over every finding: how many held everywhere, how many were
    contradicted by ``MAX_CONTRADICTING`` or more other runs."""
    total = len(judged)
    held_all = sum(j.held_all for j in judged)
    contradicted = [j for j in judged if j.count("contradicted") >= MAX_CONTRADICTING]
    share = held_all / total if total else math.nan
    return {
        "runs": runs,
        "findings": total,
        "held_all": held_all,
        "held_all_share": share,
        "contradicted_by_2_or_more": len(contradicted),
        "ok": bool(total) and runs >= 2 and not contradicted and share >= HOLD_ALL_SHARE,
    }
