"""One finding of a report: a computed sentence with the numbers behind it.

Its own module because both the transport findings (:mod:`.findings`) and the
server's own notes (:mod:`.serverinfo`) make them, and the report gathers both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    """One computed sentence, with the numbers behind it (tests read these)."""

    text: str
    metric: str = ""  # Metric.column, "" for general sentences
    best: str = ""  # transport
    worst: str = ""
    ratio: float = math.nan  # worst / best; inf when best is zero
    kind: str = "compare"  # compare | tie | single | note | run-vs-run
