"""Which repeats of a load point may carry a regression verdict, and what to say about the rest.

A figure from a point whose load generator was saturated describes the client; one from a
point that lost messages or measured an empty window describes a failure. The gate must not
call such a figure "worse" (a false alarm) or "better" (a false improvement) silently. Each
summary row carries ``validity`` (one classifier, ``duplexbench/measure/validity.py``, which also
classifies runs recorded before the column existed):

- repeats whose validity is comparable (``validity.COMPARABLE``: ok, server-saturated) are
  judged as usual;
- the others are left out of the judgement of every metric except those in ``ALWAYS_JUDGED``
  (lost, duplicated, late: they *are* the evidence), and the notes say which repeats and why;
- a metric left with no repeat on a side is ``unjudged`` with the reason in the verdict cell;
- a broken class (``BROKEN``) in *every* current repeat and *no* baseline repeat is a
  regression of its own (the server stopped delivering), reported as the metric ``validity``.

Pure: data frames in, decisions out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from ..measure.validity import COMPARABLE, validity_column

__all__ = ["ALWAYS_JUDGED", "BROKEN", "COMPARABLE", "Split", "split_repeats", "validities"]

#: Present in every current repeat and no baseline repeat: a regression by itself.
BROKEN = ("failed", "empty", "lost", "late")
#: Judged on every repeat whatever its validity: they are the validity evidence.
ALWAYS_JUDGED = ("lost", "duplicated", "late")


def validities(rows: pd.DataFrame) -> list[str]:
    """One validity per summary row: the recorded column, else the same classifier."""
    return [str(v) for v in validity_column(rows)]


@dataclass(frozen=True)
class Split:
    """One point's repeats, kept or left out of the judgement."""

    base: pd.DataFrame  # comparable baseline repeats
    current: pd.DataFrame  # comparable current repeats
    why: str  # "" when both sides kept a repeat; else why the point's metrics are unjudged
    notes: tuple[str, ...]  # which repeats were left out, and why
    broken: str  # "" or "current lost in 3/3 repeats (baseline none)": a regression


def _describe(side: str, values: list[str]) -> str:
    bad = Counter(v for v in values if v not in COMPARABLE)
    return ", ".join(f"{side} {v} in {n}/{len(values)} repeat(s)" for v, n in bad.most_common())


def split_repeats(b_rows: pd.DataFrame, c_rows: pd.DataFrame) -> Split:
    """Keep the comparable repeats of each side; say what was left out and what it means."""
    b_val, c_val = validities(b_rows), validities(c_rows)
    b_keep = [v in COMPARABLE for v in b_val]
    c_keep = [v in COMPARABLE for v in c_val]
    notes = [text for text in (_describe("baseline", b_val), _describe("current", c_val)) if text]
    if notes:
        notes = [f"left out of the judgement: {'; '.join(notes)}"]
    why = ""
    if not any(b_keep) or not any(c_keep):
        side, values = ("current", c_val) if not any(c_keep) else ("baseline", b_val)
        worst = Counter(values).most_common(1)[0][0]
        why = f"{side} {worst}"
    broken = ""
    for cls in BROKEN:
        if c_val and all(v == cls for v in c_val) and cls not in b_val:
            broken = f"current {cls} in {len(c_val)}/{len(c_val)} repeats (baseline none)"
            break
    return Split(b_rows[b_keep], c_rows[c_keep], why, tuple(notes), broken)
