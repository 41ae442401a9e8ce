"""The server's shape in a summary row: one process, or N workers behind a broker.

Why a module of its own: ``workers`` and ``broker`` are dimensions of a point
(duplexbench/broker/extension.py), so every part of the report that groups rows
by point must tell shapes apart (a 2-worker row is not a repeat of the
one-process row), and the cross-transport comparisons must pick one shape, as
they pick direct, native rows (report/infra.py:main_rows). Runs written before
these columns existed read as one process without a broker.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["COLUMNS", "describe", "reference_mask", "shape_of", "tidy"]

#: The summary columns that name the server's shape.
COLUMNS = ("workers", "broker")


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """``workers`` as integers (1 when absent) and ``broker`` as text ("none" when absent)."""
    frame = frame.copy()
    workers = frame["workers"] if "workers" in frame.columns else pd.Series(1, index=frame.index)
    frame["workers"] = pd.to_numeric(workers, errors="coerce").fillna(1).astype(int)
    broker = frame["broker"] if "broker" in frame.columns else pd.Series("none", index=frame.index)
    broker = broker.astype(object).where(broker.notna(), "none").astype(str)
    frame["broker"] = broker.replace({"": "none", "nan": "none"})
    return frame


def shape_of(row) -> tuple[int, str]:
    """One row's ``(workers, broker)``, with the defaults of :func:`tidy`."""
    try:
        workers = int(float(row.get("workers")))
    except (TypeError, ValueError):
        workers = 1
    broker = str(row.get("broker") if row.get("broker") is not None else "none")
    return workers, "none" if broker in ("", "nan") else broker


def reference_mask(frame: pd.DataFrame) -> pd.Series:
    """Rows of each run's reference shape: one process without a broker where the run has
    it, else its fewest workers (then the first broker in name order)."""
    if frame.empty:
        return pd.Series(True, index=frame.index)
    shaped = tidy(frame)
    run = shaped["run"] if "run" in shaped.columns else pd.Series("", index=shaped.index)
    keep = pd.Series(False, index=frame.index)
    for _, rows in shaped.groupby(run, sort=False):
        plain = rows[(rows["workers"] == 1) & (rows["broker"] == "none")]
        if len(plain):
            keep.loc[plain.index] = True
            continue
        first = rows.sort_values(["workers", "broker"]).iloc[0]
        keep.loc[rows.index[(rows["workers"] == first["workers"])
                            & (rows["broker"] == first["broker"])]] = True
    return keep


def describe(workers: int, broker: str) -> str:
    """"one process", "2 workers behind Redis", "1 worker behind Redis"."""
    if broker in ("none", "", "nan"):
        return "one process" if workers == 1 else f"{workers} processes"
    name = "Redis" if broker == "redis" else broker
    return f"{workers} worker{'s' if workers != 1 else ''} behind {name}"
