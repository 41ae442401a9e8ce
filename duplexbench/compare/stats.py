"""Pure statistics for the regression gate: is a change real, big enough, and which way?

A benchmark gate on shared, noisy machines fails in two ways: it cries wolf on noise, or it
misses a real slowdown. No single test avoids both, so a change is called only when three
independent conditions hold (pyperf ``compare_to`` uses the first two, asv the raw-sample test):

1. **Minimum change** — the point estimate moved by at least a relative *and* an absolute amount
   (``Threshold``). Raw latency samples number in the tens of thousands and are autocorrelated
   (one slow moment delays many deliveries), so any test on them finds tiny shifts "significant";
   the minimum change says which shifts matter.
2. **Significance** — Mann-Whitney U on the raw samples (thinned to a bounded count, which both
   caps the cost and reduces the autocorrelation between neighbouring samples), p < alpha.
3. **Consistency across repeats** — a hierarchical bootstrap (resample repeats, then samples within
   each repeat; fixed seed, so the verdict is reproducible) gives a confidence interval of the
   ratio current/baseline of the statistic; it must exclude 1. With few repeats this amounts to
   "every current repeat lies beyond every baseline repeat", so one disturbed repeat (a neighbour's
   job, a GC storm) cannot fail the build on its own.

Interleaved A/B runs (``compare_paired``) judge condition 3 pair by pair instead: repeat i of
both sides ran back to back, and the change must show in two thirds of the pairs. Tail
quantiles may gate there only where each side's own repeats agree on them
(``tail_is_stable``).

Where A/B pairs exist, server CPU per delivered message and the latency medians are judged
against the measured noise of the pairs instead (:mod:`~duplexbench.compare.pairnoise`).

Per-repeat scalar metrics (throughput, bytes per message) use 1 and 3 (repeats must not overlap);
counts that should be zero (lost messages) use a rule of their own. No I/O here: arrays in,
``Verdict`` out, so every rule is tested on synthetic data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _sps

__all__ = [
    "BETTER",
    "SAME",
    "WORSE",
    "Threshold",
    "Verdict",
    "bootstrap_ratio_ci",
    "compare_counts",
    "compare_paired",
    "compare_repeats",
    "compare_samples",
    "direction",
    "pairs_needed",
    "mann_whitney_p",
    "repeat_spread",
    "tail_is_stable",
    "thin",
]

BETTER, SAME, WORSE = "better", "same", "worse"

#: Fixed seed: the same two runs must always get the same verdict.
DEFAULT_SEED = 6202
#: Raw samples kept per side for the U test; more adds cost, not information (see module doc).
MAX_TEST_SAMPLES = 5000
#: Samples kept per repeat inside the bootstrap: bounds memory at n_boot x repeats x this.
MAX_BOOT_SAMPLES_PER_GROUP = 1000


@dataclass(frozen=True)
class Threshold:
    """How much a metric must move to matter, and which way is bad."""

    rel: float  # minimum relative change, 0.10 = 10 %
    abs: float  # minimum absolute change, in the metric's unit (ms, bytes, msgs/s, ...)
    higher_is_worse: bool = True


@dataclass(frozen=True)
class Verdict:
    """The outcome for one metric: values, effect, evidence and the word that gates CI."""

    verdict: str  # BETTER | SAME | WORSE
    baseline: float
    current: float
    change: float  # current / baseline - 1 (nan when the baseline is 0)
    delta: float  # current - baseline
    p_value: float | None = None  # Mann-Whitney U, two-sided; None when not applicable
    ci: tuple[float, float] | None = None  # bootstrap CI of current/baseline (samples only)
    reason: str = ""  # why SAME (which condition failed) or what made it a change
    n_baseline: int = 0
    n_current: int = 0


def thin(values: np.ndarray, max_n: int) -> np.ndarray:
    """Every k-th value so at most ``max_n`` remain, spread over the whole run.

    Deterministic (no RNG) and spread evenly, so neighbouring (correlated) samples are dropped
    rather than kept together.
    """
    values = np.asarray(values, dtype=float)
    if len(values) <= max_n:
        return values
    step = math.ceil(len(values) / max_n)
    return values[::step]


def mann_whitney_p(baseline: np.ndarray, current: np.ndarray, max_n: int = MAX_TEST_SAMPLES) -> float:
    """Two-sided Mann-Whitney U p-value on thinned samples (1.0 if either side is empty)."""
    a, b = thin(baseline, max_n), thin(current, max_n)
    if len(a) == 0 or len(b) == 0:
        return 1.0
    if np.all(a == a[0]) and np.all(b == a[0]):
        return 1.0  # identical constants: scipy would warn; nothing differs
    return float(_sps.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue)


def _stack(groups: Sequence[np.ndarray], per_group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = [thin(g, per_group) for g in groups if len(g)]
    lens = np.array([len(a) for a in arrays])
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int32)
    return np.concatenate(arrays), lens, offsets


def _boot_quantiles(
    groups: Sequence[np.ndarray], qs: Sequence[float], n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """n_boot x len(qs) quantiles of hierarchical resamples (repeats, then samples within)."""
    flat, lens, offsets = _stack(groups, MAX_BOOT_SAMPLES_PER_GROUP)
    k = len(lens)
    size = int(min(lens.max(), MAX_BOOT_SAMPLES_PER_GROUP))
    # Each bootstrap world draws k repeats with replacement, then `size` samples from each.
    chosen = rng.integers(0, k, size=(n_boot, k))
    # int32 offsets: half the memory of the default int64 (n_boot x k x size can be 6 M).
    within = rng.integers(0, lens[chosen][:, :, None], size=(n_boot, k, size), dtype=np.int32)
    values = flat.astype(np.float32)[offsets[chosen][:, :, None] + within].reshape(n_boot, -1)
    return np.quantile(values, list(qs), axis=1).T


def bootstrap_ratio_ci(
    baseline_groups: Sequence[np.ndarray],
    current_groups: Sequence[np.ndarray],
    qs: Sequence[float] = (0.5,),
    level: float = 0.99,
    n_boot: int = 2000,
    seed: int = DEFAULT_SEED,
) -> list[tuple[float, float]]:
    """Percentile-bootstrap CI of quantile(current)/quantile(baseline), one per q.

    Groups are the repeats of each side; resampling them first carries run-to-run variation
    into the interval, which resampling pooled samples alone would hide.
    """
    rng = np.random.default_rng(seed)
    base = _boot_quantiles(baseline_groups, qs, n_boot, rng)
    cur = _boot_quantiles(current_groups, qs, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = cur / base
    tail = (1 - level) / 2 * 100
    out = []
    for j in range(len(qs)):
        lo, hi = np.nanpercentile(ratio[:, j], [tail, 100 - tail])
        out.append((float(lo), float(hi)))
    return out


def direction(delta: float, th: Threshold) -> str:
    """BETTER, WORSE or SAME for a change ``delta`` of a metric with threshold ``th``."""
    if delta == 0:
        return SAME
    return WORSE if (delta > 0) == th.higher_is_worse else BETTER


def _relative(baseline: float, current: float) -> float:
    return current / baseline - 1 if baseline else (0.0 if current == baseline else math.nan)


def _big_enough(baseline: float, delta: float, th: Threshold) -> bool:
    # A zero baseline has no relative change: the absolute threshold alone decides.
    rel_ok = baseline == 0 or abs(delta) / abs(baseline) >= th.rel
    return rel_ok and abs(delta) >= th.abs


def compare_samples(
    baseline_groups: Sequence[np.ndarray],
    current_groups: Sequence[np.ndarray],
    specs: Sequence[tuple[float, Threshold]],
    alpha: float = 0.01,
    level: float = 0.99,
    n_boot: int = 2000,
    seed: int = DEFAULT_SEED,
) -> list[Verdict]:
    """One Verdict per (quantile, threshold) in ``specs``, from raw samples grouped by repeat."""
    base_groups = [np.asarray(g, dtype=float) for g in baseline_groups if len(g)]
    cur_groups = [np.asarray(g, dtype=float) for g in current_groups if len(g)]
    if not base_groups or not cur_groups:
        raise ValueError("compare_samples needs samples on both sides")
    base, cur = np.concatenate(base_groups), np.concatenate(cur_groups)
    p = mann_whitney_p(base, cur)
    qs = [q for q, _ in specs]
    cis = bootstrap_ratio_ci(base_groups, cur_groups, qs, level=level, n_boot=n_boot, seed=seed)
    verdicts = []
    for (q, th), ci in zip(specs, cis):
        b, c = float(np.quantile(base, q)), float(np.quantile(cur, q))
        delta = c - b
        way = direction(delta, th)
        excludes_one = (ci[0] > 1) if delta > 0 else (ci[1] < 1)
        if way == SAME or not _big_enough(b, delta, th):
            word, reason = SAME, "below minimum change"
        elif p >= alpha:
            word, reason = SAME, f"not significant (p={p:.2g} >= {alpha:g})"
        elif not excludes_one:
            word, reason = SAME, "inconsistent across repeats (CI includes 1)"
        else:
            word, reason = way, "significant, consistent and above minimum change"
        verdicts.append(
            Verdict(word, b, c, _relative(b, c), delta, p, ci, reason, len(base), len(cur))
        )
    return verdicts


def compare_repeats(
    baseline: Sequence[float], current: Sequence[float], th: Threshold
) -> Verdict:
    """Per-repeat values (throughput, bytes per message): means, min change, no overlap.

    With 2-3 repeats a test has no power at alpha=0.01 (3 vs 3 Mann-Whitney bottoms out at
    p=0.1), so the evidence is that the repeat ranges do not overlap at all.
    """
    b_arr = np.asarray([v for v in baseline if not math.isnan(v)], dtype=float)
    c_arr = np.asarray([v for v in current if not math.isnan(v)], dtype=float)
    if len(b_arr) == 0 or len(c_arr) == 0:
        raise ValueError("compare_repeats needs values on both sides")
    b, c = float(b_arr.mean()), float(c_arr.mean())
    delta = c - b
    way = direction(delta, th)
    separated = c_arr.min() > b_arr.max() if delta > 0 else c_arr.max() < b_arr.min()
    if way == SAME or not _big_enough(b, delta, th):
        word, reason = SAME, "below minimum change"
    elif not separated:
        word, reason = SAME, "repeats overlap"
    else:
        word, reason = way, "above minimum change, repeats do not overlap"
    return Verdict(word, b, c, _relative(b, c), delta, None, None, reason, len(b_arr), len(c_arr))


def compare_counts(
    baseline: Sequence[float],
    current: Sequence[float],
    baseline_total: float | None = None,
    current_total: float | None = None,
    higher_is_worse: bool = True,
) -> Verdict:
    """Counts that should be zero (lost, duplicated): any appearance from zero is a change.

    When both sides are non-zero, the rate per ``*_total`` (e.g. expected deliveries) must at
    least double, and by at least 0.1 percentage points, so a flaky one-off does not gate.
    """
    b, c = float(np.nansum(baseline)), float(np.nansum(current))
    delta = c - b
    th = Threshold(0.0, 0.0, higher_is_worse)
    way = direction(delta, th)
    if b == 0 and c > 0 or c == 0 and b > 0:
        word, reason = way, "was zero" if b == 0 else "now zero"
    elif b == c:
        word, reason = SAME, "unchanged"
    else:
        br = b / baseline_total if baseline_total else b
        cr = c / current_total if current_total else c
        hi, lo = max(br, cr), min(br, cr)
        bigger = hi >= 2 * lo and (hi - lo) >= (0.001 if baseline_total else 1)
        way = direction(cr - br, th)  # the rate decides, not totals over different runs
        word, reason = (way, "rate at least doubled") if bigger else (SAME, "below minimum change")
    return Verdict(word, b, c, _relative(b, c), delta, None, None, reason, len(baseline), len(current))


def repeat_spread(groups: Sequence[np.ndarray], q: float) -> tuple[float, float]:
    """How far one side's repeats disagree on a quantile: (relative, absolute) spread.

    The quantile of each repeat on its own; absolute = max - min, relative = that over their
    median. Measured on the baseline side of an interleaved A/B run it is the A-vs-A noise of
    the statistic on this machine right now.
    """
    per_repeat = np.array([np.quantile(g, q) for g in groups if len(g)], dtype=float)
    if len(per_repeat) == 0:
        return math.nan, math.nan
    spread = float(per_repeat.max() - per_repeat.min())
    middle = float(np.median(per_repeat))
    return (spread / middle if middle > 0 else math.inf), spread


#: Fewer repeats cannot tell a stable tail from a lucky one.
MIN_REPEATS_FOR_TAIL = 3


def tail_is_stable(groups: Sequence[np.ndarray], q: float, th: Threshold,
                   side: str = "baseline") -> tuple[bool, str]:
    """Do one side's repeats agree on a tail quantile better than the change that would be
    called? Relative spread < ``th.rel`` and absolute < ``th.abs``, over at least
    ``MIN_REPEATS_FOR_TAIL`` repeats. A/B mode gates a tail only when *both* sides are stable
    (compare.py). Returns (stable, why) for the notes."""
    n = sum(1 for g in groups if len(g))
    if n < MIN_REPEATS_FOR_TAIL:
        return False, f"{n} {side} repeat(s), stability needs >= {MIN_REPEATS_FOR_TAIL}"
    rel, spread = repeat_spread(groups, q)
    text = f"{side} repeats spread {rel * 100:.0f}% / {spread:.3g} (limit {th.rel * 100:.0f}% / {th.abs:g})"
    return (rel < th.rel and spread < th.abs), text


def pairs_needed(n: int) -> int:
    """Repeat pairs that must agree on a change: all of 1-2, else two thirds (2 of 3, 3 of 4)."""
    return n if n <= 2 else math.ceil(2 * n / 3)


def compare_paired(
    baseline_groups: Sequence[np.ndarray],
    current_groups: Sequence[np.ndarray],
    specs: Sequence[tuple[float, Threshold]],
    alpha: float = 0.01,
) -> list[Verdict]:
    """Like :func:`compare_samples`, for interleaved A/B runs: repeat ``i`` of each side ran
    back to back, so the pair shares the machine's state at that moment.

    Conditions 1 and 2 are unchanged (pooled quantile, Mann-Whitney U). Condition 3 becomes:
    the change (same direction, both thresholds) shows in ``pairs_needed(n)`` of the n repeat
    pairs. A moment of load that hits one side of one pair (a neighbour's job; seen here: one
    baseline repeat with p90 = 257 ms against ~2 ms) then neither hides a real change nor
    makes one up; the bootstrap's "every repeat beyond every other" would let it hide one.
    ``ci`` carries the lowest and highest per-pair ratio.
    """
    base_groups = [np.asarray(g, dtype=float) for g in baseline_groups]
    cur_groups = [np.asarray(g, dtype=float) for g in current_groups]
    if len(base_groups) != len(cur_groups) or not all(len(g) for g in base_groups + cur_groups):
        raise ValueError("compare_paired needs one non-empty group per repeat on both sides")
    base, cur = np.concatenate(base_groups), np.concatenate(cur_groups)
    p = mann_whitney_p(base, cur)
    n = len(base_groups)
    verdicts = []
    for q, th in specs:
        b, c = float(np.quantile(base, q)), float(np.quantile(cur, q))
        delta = c - b
        way = direction(delta, th)
        pb = np.array([np.quantile(g, q) for g in base_groups])
        pc = np.array([np.quantile(g, q) for g in cur_groups])
        agree = sum(1 for x, y in zip(pb, pc)
                    if direction(y - x, th) == way and _big_enough(x, y - x, th))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = pc / pb
        ci = (float(np.nanmin(ratios)), float(np.nanmax(ratios)))
        if way == SAME or not _big_enough(b, delta, th):
            word, reason = SAME, "below minimum change"
        elif p >= alpha:
            word, reason = SAME, f"not significant (p={p:.2g} >= {alpha:g})"
        elif agree < pairs_needed(n):
            word, reason = SAME, f"inconsistent across repeat pairs ({agree} of {n} agree)"
        else:
            word, reason = way, (f"significant, above minimum change in {agree} of {n} "
                                 "repeat pairs")
        verdicts.append(Verdict(word, b, c, _relative(b, c), delta, p, ci, reason, len(base), len(cur)))
    return verdicts
