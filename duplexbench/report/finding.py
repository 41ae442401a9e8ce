"""One finding of a report: a computed sentence with the numbers behind it.

Its own module because both the transport findings (:mod:`.findings`) and the
server's own notes (:mod:`.serverinfo`) make them, and the report gathers both.
Besides the sentence a finding carries what it says in machine-readable form
(metric, load point, best, worst, ratio and the interval a rerun's ratio should
fall in): `python -m duplexbench reproduce` checks one run's findings against
another run's figures, and the report writes them to findings.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Finding", "FigureValue", "FINDING_KINDS"]

#: compare = a finding (a winner, a ratio, its rerun interval above 1);
#: tie = compared, no winner; the others are sentences without a comparison.
FINDING_KINDS = ("compare", "tie", "single", "note", "run-vs-run", "not-comparable")


def _json_number(value: float):
    """JSON has no inf or NaN: infinity as the string "inf", unknown as null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


@dataclass(frozen=True)
class FigureValue:
    """One transport's figure at the finding's point, with its rerun interval."""

    transport: str
    value: float
    lo: float = math.nan
    hi: float = math.nan

    def to_dict(self) -> dict:
        return {"transport": self.transport, "value": _json_number(self.value),
                "lo": _json_number(self.lo), "hi": _json_number(self.hi)}


@dataclass(frozen=True)
class Finding:
    """One computed sentence, with the numbers behind it (tests and reproduce read these)."""

    text: str
    metric: str = ""  # Metric.column, "" for general sentences
    best: str = ""  # transport
    worst: str = ""
    ratio: float = math.nan  # worst / best; inf when best is zero
    kind: str = "compare"  # one of FINDING_KINDS
    #: The load point compared at: ((axis, value), ...) in report/derived.py's AXES order.
    point: tuple[tuple[str, float], ...] = ()
    #: Where a rerun's worst/best ratio should fall (report/intervals.py); NaN = not known.
    lo: float = math.nan
    hi: float = math.nan
    repeats: int = 1
    #: Every compared transport's figure at the point, with its rerun interval.
    values: tuple[FigureValue, ...] = ()

    def to_dict(self) -> dict:
        """The finding as findings.json holds it."""
        return {
            "kind": self.kind, "metric": self.metric, "text": self.text,
            "point": {axis: _json_number(value) for axis, value in self.point},
            "best": self.best, "worst": self.worst, "ratio": _json_number(self.ratio),
            "lo": _json_number(self.lo), "hi": _json_number(self.hi), "repeats": self.repeats,
            "values": [v.to_dict() for v in self.values],
        }
