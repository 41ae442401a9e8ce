"""What one load point produced, or why it could not be measured.

Shared by the point orchestration (:mod:`duplexbench.runner.point`), the run session
(:mod:`duplexbench.runner.session`) and the commands built on them (run, capacity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..scenario.loadpoint import LoadPoint  # the module, not the package: keeps the import tree shallow

__all__ = ["PointFailed", "PointResult", "num"]


class PointFailed(Exception):
    """A point could not be measured; the message is the reason recorded."""


def num(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, empty or NaN."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


@dataclass(frozen=True)
class PointResult:
    """What one load point produced; ``row`` is the summary.csv row written."""

    point: LoadPoint
    row: dict
    #: False when the point produced no measurement (a crash, a timeout).
    measured: bool
    reason: str = ""

    @property
    def status(self) -> str:
        return str(self.row.get("status") or "ok")

    @property
    def ok(self) -> bool:
        """Measured without client errors (lost messages are judged separately)."""
        return self.measured and self.status in ("ok", "lost")

    @property
    def lost(self) -> int:
        value = num(self.row.get("lost"))
        return int(value) if value is not None else 0
