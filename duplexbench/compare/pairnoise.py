"""A/B pairs judged against their own measured noise: server CPU per delivered message and
the latency medians in the A/B gate (docs/regression.md, "Server cost").

A fixed threshold ("+30 % and +5 points") is either too wide for a quiet machine or too narrow
for a busy one; the pairs of an interleaved A/B run measure their own noise. Per pair (repeat
i of base and current, run back to back, sharing the machine's state) the log-ratio
d_i = ln(B_i / A_i). Its spread around each point's own mean, pooled over every transport and
load point of the comparison (``pooled_pair_noise``), is the noise a pair difference carries
on this machine at this moment; the drift between repeats (the same build's CPU per message
moved by 13 % between repeats 20 s apart on the shared machine) is shared by a pair and drops
out. A change is called (``compare_pair_noise``) when the mean of d exceeds k x its standard
error (k the two-sided Student t quantile at ``alpha`` for the pooled degrees of freedom) and
a small floor, in the same direction in most pairs; and, for a change of every transport's
cost (a slower fan-out), over all points together (``compare_pooled_noise``).

One disturbed run (a neighbour's burst) is pulled in: log-ratios further than ``WINSOR_SD``
robust standard deviations from their point's median count as that far (winsorized). Pure
arithmetic like :mod:`~duplexbench.compare.stats`: arrays in, ``Verdict`` out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _sps

from .stats import SAME, Threshold, Verdict, direction, pairs_needed

__all__ = ["WINSOR_SD", "PairNoise", "compare_pair_noise", "compare_pooled_noise",
           "pooled_pair_noise", "robust_scale"]

#: Pair log-ratios further than this many robust standard deviations from their point's
#: median are pulled in to it (winsorized): a run disturbed by a neighbour (seen: one pair
#: of an A/A run at -41 % where the others were within 10 %) moves a mean by a bounded amount
#: and does not inflate the noise that every other point is judged against.
WINSOR_SD = 2.5
#: The median absolute difference of two draws of a normal distribution is this many of its
#: standard deviations (0.6745 x sqrt 2): the pairwise-difference (Shamos) scale's constant.
_PAIR_DIFF_PER_SD = 0.9539


@dataclass(frozen=True)
class PairNoise:
    """How much the log-ratio of one A/B pair varies when nothing changed, for one metric.

    ``sd``: the standard deviation of d_i = ln(B_i / A_i) around each point's own mean
    (after winsorizing, see ``clip``), pooled over the points of a comparison (``dof`` =
    sum of (pairs - 1)); ``points``: how many points contributed; ``robust``: the robust
    scale (``robust_scale``) that sets the winsorizing bounds.
    """

    sd: float
    dof: int
    points: int
    robust: float = math.nan

    def describe(self) -> str:
        if not self.dof:
            return "no pair noise measured (a point needs >= 2 repeat pairs)"
        return (f"pair noise sd {self.sd * 100:.1f} % of one pair's log-ratio "
                f"(pooled over {self.points} point(s), {self.dof} dof)")

    def clip(self, d: np.ndarray) -> np.ndarray:
        """``d`` winsorized at its median +- WINSOR_SD robust standard deviations."""
        if len(d) < 3 or not (math.isfinite(self.robust) and self.robust > 0):
            return d
        middle = float(np.median(d))
        return np.clip(d, middle - WINSOR_SD * self.robust, middle + WINSOR_SD * self.robust)


def _log_ratios(baseline: Sequence[float], current: Sequence[float]) -> np.ndarray:
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(current, dtype=float)
    if len(b) != len(c):
        raise ValueError("paired values need the same number of repeats on both sides")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(c / b)
    return d[np.isfinite(d)]


def robust_scale(ratios: Sequence[np.ndarray]) -> float:
    """A standard deviation of the pair log-ratios that one disturbed pair hardly moves: the
    median absolute difference of two pairs of one point, over every point (the Shamos
    estimator), / 0.9539.

    Not the MAD of the residuals from each point's median: with the 3-6 pairs of a point,
    those residuals are biased small (of 3, one is 0 by construction; of 4, the middle two
    are +-half their gap), so the winsorizing bounds cut ordinary spread and the noise came
    out small: in a simulation of normal pair noise, 2-18x the false alarms alpha allows
    (docs/regression.md, "Server cost"), and one A/A run in 12 of the test's tiny A/B run
    flagged server CPU here. The pairwise differences carry no such structure.
    """
    diffs = [np.abs(np.subtract.outer(d, d))[np.triu_indices(len(d), 1)] for d in ratios
             if len(d) >= 2]
    if not diffs:
        return math.nan
    return float(np.median(np.concatenate(diffs))) / _PAIR_DIFF_PER_SD


def pooled_pair_noise(groups: Sequence[tuple[Sequence[float], Sequence[float]]]) -> PairNoise:
    """The pooled within-point spread of pair log-ratios; ``groups`` = (base, current) values
    per point, paired by position (repeat i of each side ran back to back).

    Each point's own mean is taken out, so a change that moves a point's pairs alike (the
    thing being tested for) does not count as noise, and points whose costs differ (long
    polling's request per message against a stream's frame) pool their *relative* spreads.
    The log-ratios are winsorized first (``WINSOR_SD`` robust standard deviations, see
    ``robust_scale``, from their point's median).
    """
    ratios = [d for d in (_log_ratios(b, c) for b, c in groups) if len(d) >= 2]
    if not ratios:
        return PairNoise(math.nan, 0, 0)
    robust = robust_scale(ratios)
    shape = PairNoise(math.nan, 0, 0, robust)
    squares, dof = 0.0, 0
    for d in ratios:
        d = shape.clip(d)
        squares += float(np.sum((d - d.mean()) ** 2))
        dof += len(d) - 1
    return PairNoise(math.sqrt(squares / dof), dof, len(ratios), robust)


def compare_pair_noise(baseline: Sequence[float], current: Sequence[float], floor: Threshold,
                       noise: PairNoise, alpha: float = 0.01,
                       p_value: float | None = None) -> Verdict:
    """A/B pairs judged against their measured noise (see the module doc).

    Worse (or better) when all hold: the mean log-ratio is beyond ``k x noise.sd / sqrt(n)``
    (k = Student t at 1 - alpha/2 with ``noise.dof`` degrees of freedom); the change
    exp(mean) - 1 is at least ``floor.rel`` and, at the baseline's median, at least
    ``floor.abs`` (the means' difference is what one disturbed repeat moves most); the pairs
    agree on the direction in ``pairs_needed(n)`` of n; and, when
    ``p_value`` is given (latency: Mann-Whitney U on the raw samples), it is below alpha.
    ``ci`` is the ratio interval exp(mean +- k x standard error).
    """
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(current, dtype=float)
    raw = _log_ratios(b, c)
    if len(raw) == 0:
        raise ValueError("compare_pair_noise needs at least one pair with values on both sides")
    d = noise.clip(raw)
    n = len(d)
    mean_d = float(d.mean())
    b_mean, c_mean = float(np.nanmean(b)), float(np.nanmean(c))
    change = math.exp(mean_d) - 1
    delta = c_mean - b_mean
    # The absolute floor is checked on the change the pairs measure, at the baseline's typical
    # level: the means' difference is what one disturbed repeat moves most (one baseline
    # repeat at 10x the others' median can bring its mean to the current's and hide a 5x
    # change in every other pair; the log-ratios are winsorized, the means are not).
    judged_delta = float(np.median(b[np.isfinite(b)])) * change
    way = direction(mean_d, floor)
    agree = int(np.sum(d > 0)) if mean_d > 0 else int(np.sum(d < 0))
    if noise.dof and math.isfinite(noise.sd):
        k = float(_sps.t.ppf(1 - alpha / 2, noise.dof))
        half = k * noise.sd / math.sqrt(n)
        ci = (math.exp(mean_d - half), math.exp(mean_d + half))
        beyond = abs(mean_d) > half
        noise_text = f"{k:.2f} x {noise.sd / math.sqrt(n) * 100:.1f} % = {half * 100:.1f} %"
    else:
        ci, beyond, noise_text = None, False, "unknown"
    if way == SAME or abs(change) < floor.rel or abs(judged_delta) < floor.abs:
        word, reason = SAME, f"below the floor ({floor.rel * 100:g} %)"
    elif not beyond:
        word, reason = SAME, f"within the pairs' noise ({noise_text})"
    elif p_value is not None and p_value >= alpha:
        word, reason = SAME, f"not significant (p={p_value:.2g} >= {alpha:g})"
    elif agree < pairs_needed(n):
        word, reason = SAME, f"inconsistent across repeat pairs ({agree} of {n} agree)"
    else:
        word, reason = way, (f"beyond the pairs' noise ({noise_text}) in {agree} of {n} "
                             "repeat pairs")
    return Verdict(word, b_mean, c_mean, change, delta, p_value, ci, reason, len(b), len(c))


def compare_pooled_noise(groups: Sequence[tuple[Sequence[float], Sequence[float]]],
                         floor: Threshold, noise: PairNoise, alpha: float = 0.01) -> Verdict:
    """One verdict over several points (every transport of an A/B run): did the metric move
    across the board?

    The mean of the points' mean log-ratios against its standard error from the pooled pair
    noise (sd x sqrt(sum 1/n_t) / T), the same floor, and most points' means agreeing on the
    direction (``pairs_needed(T)`` of T). A change of every transport's cost per delivery
    (a slower fan-out) is resolved with all the pairs, where each transport alone has 4.
    """
    means, counts, b_all, c_all = [], [], [], []
    for baseline, current in groups:
        d = noise.clip(_log_ratios(baseline, current))
        if len(d):
            means.append(float(d.mean()))
            counts.append(len(d))
            b_all += list(np.asarray(baseline, dtype=float))
            c_all += list(np.asarray(current, dtype=float))
    if len(means) < 2:
        raise ValueError("compare_pooled_noise needs at least two points with pairs")
    t = len(means)
    mean_d = float(np.mean(means))
    change = math.exp(mean_d) - 1
    way = direction(mean_d, floor)
    agree = sum(1 for m in means if (m > 0) == (mean_d > 0) and m != 0)
    if noise.dof and math.isfinite(noise.sd):
        k = float(_sps.t.ppf(1 - alpha / 2, noise.dof))
        se = noise.sd * math.sqrt(sum(1 / n for n in counts)) / t
        half = k * se
        ci = (math.exp(mean_d - half), math.exp(mean_d + half))
        beyond = abs(mean_d) > half
        noise_text = f"{k:.2f} x {se * 100:.1f} % = {half * 100:.1f} %"
    else:
        ci, beyond, noise_text = None, False, "unknown"
    if way == SAME or abs(change) < floor.rel:
        word, reason = SAME, f"below the floor ({floor.rel * 100:g} %)"
    elif not beyond:
        word, reason = SAME, f"within the pairs' noise ({noise_text})"
    elif agree < pairs_needed(t):
        word, reason = SAME, f"points disagree ({agree} of {t} move this way)"
    else:
        word, reason = way, (f"all points together beyond the pairs' noise ({noise_text}); "
                             f"{agree} of {t} points move this way")
    b_mean, c_mean = float(np.mean(b_all)), float(np.mean(c_all))
    return Verdict(word, b_mean, c_mean, change, c_mean - b_mean, None, ci, reason,
                   sum(counts), sum(counts))
