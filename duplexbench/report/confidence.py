"""How sure a comparison is, in words: the rerun interval, ties and what would resolve them.

findings.py says who won; this module says how far that can be trusted: the
spread of each compared figure (report/intervals.py) read from the repeats of
its point, the sentence fragment stating a ratio's rerun interval, why a
comparison is a tie (within 5 %, repeats that disagree, an interval that
reaches 1, a memory slope not clear of its standard error) and how many repeats
would resolve it.
"""

from __future__ import annotations

import math

import pandas as pd

from ..measure.validity import comparable
from .derived import AXES
from .intervals import RSS_SE_COLUMN, Spread, repeats_to_resolve, spread_of
from .wording import TIE_TOLERANCE, format_ratio, number, transport_name

__all__ = [
    "MAX_HINT_REPEATS",
    "usable",
    "repeat_spread",
    "spreads_at",
    "memory_text",
    "interval_text",
    "tie_reason",
]

#: A tie's hint names the repeats that would resolve it up to this many.
MAX_HINT_REPEATS = 10


def usable(agg: pd.DataFrame) -> pd.DataFrame:
    if "validity" not in agg.columns:
        return agg
    return agg[agg["validity"].map(lambda v: comparable(v) or v in ("", None)
                                   or (isinstance(v, float) and math.isnan(v)))]


def repeat_spread(frame: pd.DataFrame | None, point, metric: str, best: str,
            worst: str) -> tuple[float, float, int] | None:
    """(min, max, n) of the per-repeat ratios worst/best, repeats paired by number."""
    if frame is None or frame.empty or "repeat" not in frame.columns:
        return None
    rows = frame[point.mask(frame)] if len(frame) else frame
    if "validity" in rows.columns:
        rows = usable(rows)
    a = rows[rows["transport"] == best].set_index("repeat")[metric].dropna()
    b = rows[rows["transport"] == worst].set_index("repeat")[metric].dropna()
    common = a.index.intersection(b.index)
    if len(common) < 2:
        return None
    ratios = [float(b[r]) / float(a[r]) for r in common if float(a[r]) > 0]
    if len(ratios) < 2:
        return None
    return min(ratios), max(ratios), len(ratios)


def _rows_of(frame: pd.DataFrame | None, agg_rows: pd.DataFrame, point,
             transport: str) -> pd.DataFrame:
    """The repeats of one transport at ``point`` (before aggregation) when known."""
    if frame is not None and not frame.empty and {"transport", *AXES} <= set(frame.columns):
        rows = frame[point.mask(frame) & (frame["transport"] == transport)]
        rows = usable(rows) if "validity" in rows.columns else rows
        if len(rows):
            return rows
    return agg_rows[agg_rows["transport"] == transport]


def spreads_at(frame, rows: pd.DataFrame, point, metric: str,
             values: list[tuple[str, float]]) -> dict[str, Spread]:
    return {t: spread_of(_rows_of(frame, rows, point, t), metric, v) for t, v in values}


def memory_text(rows: pd.DataFrame, values: list[tuple[str, float]]) -> str:
    """'long polling 31 ± 6, SSE 96 ± 7 KiB (slope ± standard error ...)' for memory."""
    se = rows.set_index("transport").get(RSS_SE_COLUMN)
    parts = []
    for transport, value in values:
        error = se.get(transport) if se is not None else math.nan
        parts.append(f"{transport_name(transport)} {number(value)}"
                     + (f" ± {number(error)}" if error is not None and not pd.isna(error) else ""))
    known = se is not None and se.notna().any()
    how = ("slope of peak RSS over the subscriber counts ± its standard error" if known else
           "slopes from two subscriber counts, which leave no standard error: sweep three or "
           "more")
    return f"{', '.join(parts)} KiB; {how}"


def interval_text(lo: float, hi: float, repeats: int, pair: str = "",
                   spread: tuple[float, float, int] | None = None) -> str:
    """'; a rerun: 4.1–5.4×' (or '; long polling / SSE on a rerun: 0.52–11×' for a tie);
    with repeats their own range first ('; 3 repeats: 4.6–5.0×; a rerun with 3 ...')."""
    measured = (f"; {spread[2]} repeats: {spread[0]:.2f}–{spread[1]:.2f}×"
                if spread is not None and not pair else "")
    if math.isnan(lo) or math.isnan(hi) or math.isinf(lo):
        return measured
    who = "a rerun" if repeats <= 1 else f"a rerun with {repeats} repeats"
    who = f"{pair} on {who}" if pair else who
    span = f"{lo:.2f}–{hi:.2f}×" if hi < 10 else f"{lo:.2g}–{hi:.3g}×"
    return f"{measured}; {who}: {span}"


def tie_reason(metric: str, ratio: float, lo: float, best: Spread, worst: Spread,
                spread_known: bool, spread) -> tuple[str, str]:
    """(why this comparison is a tie, what would resolve it) or ('', '')."""
    if ratio <= 1 + TIE_TOLERANCE:
        return "within 5%", ""
    if spread is not None and spread[0] <= 1:
        return (f"the repeats disagree ({spread[0]:.2f}–{spread[1]:.2f}×, "
                f"{spread[2]} repeats)"), ""
    if metric == "server_rss_kib_per_conn" and not (best.resolved and worst.resolved):
        # No ratio below the error: 40 connections' worth of RSS noise is no ratio.
        return "no ratio: a slope not clear of its standard error", ""
    if not spread_known or math.isnan(lo) or lo > 1:
        return "", ""
    repeats = max(best.repeats, worst.repeats)
    where = "this run's noise" if repeats <= 1 else f"the noise of {repeats} repeats"
    if metric == "server_rss_kib_per_conn":  # a slope: repeats are not its remedy
        return f"tie within {where}", " More subscriber counts, further apart, narrow it."
    hint = ""
    needed = repeats_to_resolve(best, worst)
    if needed is not None and needed <= MAX_HINT_REPEATS and needed > repeats:
        hint = f" --repeats {needed} would resolve a {format_ratio(ratio)} ratio."
    elif needed is not None:
        hint = (f" Repeats would not resolve a {format_ratio(ratio)} ratio at this load "
                f"(about {needed} needed).") if needed > repeats else ""
    return f"tie within {where}", hint
