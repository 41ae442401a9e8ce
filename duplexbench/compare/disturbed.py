"""Repeats far from their siblings: a run a neighbour disturbed, named so a reader knows.

The gate is built so that no single repeat decides a verdict (``pairs_needed`` pairs must
agree, the plain gate's bootstrap resamples the repeats, the pair noise is winsorized). The
price: a repeat disturbed far enough can hide a real change at its point (seen in CI: with a
neighbour test running, a baseline repeat pushed WebSocket's pooled p90 to 35 ms against ~1 ms
and the child's +2 ms, 5x the median, read "same" there), and the verdict reads as if the
runs had been quiet. So the comparison names such repeats (notes, the summary line,
``compare.json`` ``disturbed``) and says what to do: rerun, or run more repeats. Pure
arithmetic: per-repeat values in, ``Disturbed`` out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ["DISTURBED_FACTOR", "Disturbed", "disturbed_repeats"]

#: A repeat whose value is this many times its side's median (or that fraction of it) is
#: named. Quiet repeats of one build differ by up to ~1.8x in latency median here (0.43 to
#: 0.78 ms for NDJSON at the A/B point); a change of build moves every repeat alike.
DISTURBED_FACTOR = 2.5


@dataclass(frozen=True)
class Disturbed:
    """One repeat of one side of one point, far from the median of its side's repeats."""

    transport: str
    point: str
    side: str  # "baseline" | "current"
    repeat: str  # the repeat's label in the run (summary.csv ``repeat``)
    metric: str
    value: float
    center: float  # the median over every repeat of that side

    @property
    def factor(self) -> float:
        return self.value / self.center

    def describe(self) -> str:
        how = (f"{self.factor:.1f}x" if self.factor >= 1 else f"1/{1 / self.factor:.1f} of")
        return (f"{self.transport} {self.point}: {self.side} repeat {self.repeat} {self.metric} "
                f"{self.value:.4g}, {how} its side's median ({self.center:.4g}): a disturbed "
                "run; a 'same' at this point may be this repeat's, rerun to judge it")

    def to_json(self) -> dict:
        return {**asdict(self), "factor": self.factor}


def disturbed_repeats(values: Sequence[float], labels: Sequence[str], *, transport: str,
                      point: str, side: str, metric: str,
                      factor: float = DISTURBED_FACTOR) -> list[Disturbed]:
    """The repeats whose value is ``factor`` times their side's median or more (or as far
    below it). Needs three repeats with values: of two, neither can be told the odd one."""
    pairs = [(str(label), float(v)) for label, v in zip(labels, values)
             if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if len(pairs) < 3:
        return []
    center = float(np.median([v for _, v in pairs]))
    return [Disturbed(transport, point, side, label, metric, v, center)
            for label, v in pairs if v >= factor * center or v * factor <= center]
