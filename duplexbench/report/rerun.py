"""findings.json: a run's findings and figures in the form another run can check.

A finding is only worth acting on if a rerun says the same. To check that,
`python -m duplexbench reproduce` needs each run's findings as data, not
sentences: which metric, at which load point, which transport won, by what
ratio, and the interval the run stated for a rerun's ratio; and every figure
the run measured with its own rerun interval (the coverage of those intervals
is what calibrates them: report/calibration.py). The report writes this beside
report.md; reproduce reads it, or computes it here from the results directory.
"""

from __future__ import annotations

import math

import pandas as pd

from ..measure.validity import comparable
from .derived import AXES, aggregate
from .finding import Finding
from .infra import main_rows
from .findings import METRICS, run_findings
from .intervals import LEVEL, SE_COLUMNS, spread_of
from .load import ReportRun
from . import calibration
from .noise import BLOCK_S, analysed_frame

__all__ = ["FINDINGS_JSON", "SCHEMA", "figure_records", "run_record", "record_of"]

FINDINGS_JSON = "findings.json"
SCHEMA = 1


def _number(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def figure_records(frame: pd.DataFrame, metrics=METRICS) -> list[dict]:
    """Every comparable figure of the run (one per metric, transport and load point),
    with its rerun interval and the run's own share of its error."""
    if frame.empty:
        return []
    frame = main_rows(frame)  # the aggregate's rows: a proxied or HTTP/2 row is no repeat
    agg = aggregate(frame)
    records = []
    for metric in metrics:
        if metric.column not in agg.columns:
            continue
        rows = agg[agg[metric.column].notna()]
        if metric.column == "server_rss_kib_per_conn":
            # One slope per transport: state it once, at its largest point.
            rows = rows.sort_values("clients").groupby("transport", sort=False).tail(1)
        for _, row in rows.iterrows():
            mask = (frame["transport"] == row["transport"])
            for axis in AXES:
                mask &= frame[axis].isna() if pd.isna(row[axis]) else \
                    (frame[axis].astype(float) == float(row[axis]))
            repeats = frame[mask]
            if "validity" in repeats.columns and repeats["validity"].map(comparable).any():
                repeats = repeats[repeats["validity"].map(comparable)]
            value = float(row[metric.column])
            spread = spread_of(repeats, metric.column, value)
            lo, hi = spread.interval()
            se = SE_COLUMNS.get(metric.column)
            within = (float(pd.to_numeric(repeats[se], errors="coerce").pow(2).mean()) ** 0.5
                      if se and se in repeats.columns else 0.0)
            if metric.column == "server_rss_kib_per_conn":
                error = pd.to_numeric(repeats.get("server_rss_kib_per_conn_se"),
                                      errors="coerce").iloc[0] if len(repeats) else math.nan
                within = error / value if value > 0 and spread.resolved else math.nan
            records.append({
                "metric": metric.column, "transport": str(row["transport"]),
                "point": {axis: _number(row[axis]) for axis in AXES},
                "value": _number(value), "lo": _number(lo), "hi": _number(hi),
                "se_within": _number(within), "repeats": spread.repeats,
                "validity": str(row.get("validity", "") or ""),
            })
    return records


def record_of(run: ReportRun, findings: list[Finding], figures: list[dict]) -> dict:
    """findings.json's content."""
    scenario = run.meta.get("scenario") or {}
    return {
        "schema": SCHEMA,
        "run_id": run.run_id,
        "scenario": scenario.get("name") if isinstance(scenario, dict) else str(scenario),
        "status": run.meta.get("status"),
        "interval": {
            "level": LEVEL,
            "meaning": "where another run of this build on this machine would measure the "
                       "figure (or ratio)",
            "within_run": f"circular block bootstrap over published messages, {BLOCK_S:g} s "
                          "blocks (report/noise.py)",
            "between_runs": {m: dict(t) for m, t in calibration.RERUN_SD.items()},
            "calibrated_by": calibration.MEASURED_BY,
        },
        "findings": [f.to_dict() for f in findings],
        "figures": figures,
    }


def run_record(run: ReportRun) -> tuple[list[Finding], dict]:
    """The run's findings and its findings.json content, from one pass over its samples."""
    frame = analysed_frame(run)
    findings = run_findings(run, frame)
    return findings, record_of(run, findings, figure_records(frame))
