"""The verdict table of a comparison: its rows, the whole comparison, what a row can say.

Kept apart from the comparing (:mod:`~duplexbench.compare.runs`) and the formatting
(:mod:`~duplexbench.compare.output`) so that each imports it and neither the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..measure.results import Run
from .disturbed import Disturbed
from .stats import WORSE, Verdict

__all__ = ["MISSING", "UNJUDGED", "Comparison", "InputError", "Row"]

MISSING = "missing"
#: A metric whose repeats cannot carry a verdict (duplexbench/comparable.py); the row says why.
UNJUDGED = "unjudged"


class InputError(Exception):
    """The two inputs cannot be compared; the message says why (exit status 2)."""


@dataclass(frozen=True)
class Row:
    """One line of the verdict table."""

    transport: str
    point: str  # load point label, e.g. "20c 200/s 64B"
    metric: str
    status: str  # better | same | worse | missing | unjudged
    gated: bool
    verdict: Verdict | None = None
    note: str = ""
    why: str = ""  # for unjudged: which side's validity, e.g. "current loadgen-saturated"

    @property
    def regression(self) -> bool:
        return self.gated and self.status == WORSE


@dataclass(frozen=True)
class Comparison:
    """Everything the outputs (text, Markdown, JSON) and the exit status are made from."""

    baseline: Run
    current: Run
    rows: tuple[Row, ...]
    notes: tuple[str, ...]
    multi_point: bool  # several load points per transport: name the point in the summary
    paired: bool = False  # A/B mode: interleaved repeats, pairwise consistency, stable tails
    disturbed: tuple[Disturbed, ...] = ()  # repeats far from their side's median (disturbed.py)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]


# ---------------------------------------------------------------------------
# Loading
