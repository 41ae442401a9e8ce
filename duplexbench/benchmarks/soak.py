"""Soak verdict: does a long run's server keep its memory and file descriptors flat?

``make soak`` runs scenarios/soak.toml (every transport, moderate load, SOAK_S
seconds each) and then ``python -m duplexbench.benchmarks.soak RUN_DIR``, which writes
``soak.json`` (the verdicts) and ``soak.csv`` (server RSS, open files,
connections and CPU per 10 s, per transport) into the run and prints a table;
the report (duplexbench/report/resilience.py) plots the same series.

Why the judging starts late: a server's memory grows legitimately until its
retention rings are full (``retention`` messages per topic; a 3-minute run at
50 msg/s over 4 topics grew RSS by 9 %, all of it retention filling) and until
its allocator has warmed up. So the rings must fill early (soak.toml: retention
1,000 at 25 msg/s per topic fills in 40 s) and only growth *after*
``judge_from_s`` = 1.5 x fill time + 10 s counts.

The bounds, per transport, over the judged part of the measurement:

- RSS slope (least squares, server RSS in MiB against minutes) <= 1.0 MiB/min.
  At the soak's ~1,250 deliveries/s that is ~14 bytes per delivery: a leak of
  one small object per message, connection or request is several times that.
  Noise on a shared 2-core machine (allocator arenas, GC) stays well below.
- Open files (fds, sockets included) at the end <= at the start of judging + 5:
  connections are long-lived or (long polling) reused, so fds must not creep.
- lost = 0 and late = 0 (late: delivered after the drain bound, when reported).
- At least MIN_JUDGED_S (60 s) judged; a shorter run says "too short to judge"
  (not a failure: the 20-30 s plumbing test in tests/faults is such a run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FD_BOUND", "MIN_JUDGED_S", "RSS_SLOPE_BOUND_MIB_MIN", "SoakVerdict", "judge_from_s",
           "json_safe", "judge_run", "timeseries"]

RSS_SLOPE_BOUND_MIB_MIN = 1.0
FD_BOUND = 5
MIN_JUDGED_S = 60.0
_MIB = 1024 * 1024
_BIN_S = 10.0


@dataclass(frozen=True)
class SoakVerdict:
    transport: str
    verdict: str  # "pass", "FAIL", "too short to judge"
    reasons: str
    measured_s: float
    judge_from_s: float
    judged_s: float
    rss_start_mib: float
    rss_end_mib: float
    rss_slope_mib_min: float
    open_files_start: float
    open_files_end: float
    lost: float
    late: float


def judge_from_s(retention: int, topics: int, rate: float) -> float:
    """Seconds into the measurement after which growth is judged (see the module doc)."""
    per_topic = rate / max(1, topics)
    fill = retention / per_topic if per_topic > 0 else math.inf
    return 1.5 * fill + 10.0


def _rss_mib(frame: pd.DataFrame) -> pd.Series:
    """RSS in MiB: ``rss_mib``, or older runs' ``rss_mb`` (10^6 bytes) converted."""
    if "rss_mib" in frame and frame["rss_mib"].notna().any():
        return frame["rss_mib"].astype(float)
    return frame["rss_mb"].astype(float) * 1e6 / _MIB


def _server_series(load: pd.DataFrame, transport: str) -> pd.DataFrame:
    """The server's measure-phase samples of one transport, ``t`` from the measurement start."""
    rows = load[(load["process"] == "server") & (load["transport"] == transport)]
    if "phase" in rows and (rows["phase"] == "measure").any():
        rows = rows[rows["phase"] == "measure"]
    rows = rows.sort_values("t_s")
    if not len(rows):
        return rows.assign(t=[])
    return rows.assign(t=rows["t_s"] - rows["t_s"].iloc[0])


def _judge(series: pd.DataFrame, start: float, row: dict, transport: str,
           min_judged_s: float) -> SoakVerdict:
    measured = float(series["t"].iloc[-1]) if len(series) else 0.0
    judged = series[series["t"] >= start]
    span = float(judged["t"].iloc[-1] - judged["t"].iloc[0]) if len(judged) > 1 else 0.0
    nan = math.nan
    rss = _rss_mib(judged).to_numpy(float) if len(judged) else np.array([])
    slope = (float(np.polyfit(judged["t"].to_numpy(float) / 60.0, rss, 1)[0])
             if len(judged) > 2 and span > 0 else nan)
    head = judged[judged["t"] <= start + _BIN_S]
    tail = judged[judged["t"] >= judged["t"].max() - _BIN_S] if len(judged) else judged
    fds_start = float(head["open_files"].median()) if len(head) else nan
    fds_end = float(tail["open_files"].median()) if len(tail) else nan
    lost = _num(row.get("lost"))
    late = _num(row.get("late"))
    reasons = []
    if not math.isnan(slope) and slope > RSS_SLOPE_BOUND_MIB_MIN:
        reasons.append(f"RSS grew {slope:.2f} MiB/min after the rings were full "
                       f"(bound {RSS_SLOPE_BOUND_MIB_MIN:g})")
    if not math.isnan(fds_start) and fds_end > fds_start + FD_BOUND:
        reasons.append(f"open files grew from {fds_start:.0f} to {fds_end:.0f} (bound +{FD_BOUND})")
    if lost > 0:
        reasons.append(f"{lost:.0f} messages lost")
    if late > 0:
        reasons.append(f"{late:.0f} messages late")
    if str(row.get("status") or "ok") == "failed":
        reasons.append("the point failed")
    if reasons:
        verdict = "FAIL"
    elif span < min_judged_s:
        verdict = "too short to judge"
        reasons.append(f"{span:.0f} s judged after the rings were full at ~{start:.0f} s; "
                       f"needs {min_judged_s:.0f} s (SOAK_S >= {start + min_judged_s:.0f})")
    else:
        verdict = "pass"
    return SoakVerdict(
        transport=transport, verdict=verdict, reasons="; ".join(reasons), measured_s=measured,
        judge_from_s=start, judged_s=span,
        rss_start_mib=float(rss[0]) if len(rss) else nan,
        rss_end_mib=float(rss[-1]) if len(rss) else nan, rss_slope_mib_min=slope,
        open_files_start=fds_start, open_files_end=fds_end, lost=lost, late=late)


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _scenario_figures(meta: dict, summary: pd.DataFrame) -> tuple[int, int, float]:
    parsed = (meta.get("scenario") or {}).get("parsed") or {}
    retention = int((parsed.get("server") or {}).get("retention") or 10000)
    topics = int(parsed.get("topics") or 1)
    rate = float(summary["rate_msgs_s"].iloc[0]) if len(summary) else 0.0
    return retention, topics, rate


def judge_run(meta: dict, summary: pd.DataFrame, load: pd.DataFrame | None, *,
              min_judged_s: float = MIN_JUDGED_S) -> list[SoakVerdict]:
    """One verdict per transport (its last repeat) of a run."""
    if load is None or not len(load) or not len(summary):
        return []
    retention, topics, rate = _scenario_figures(meta, summary)
    start = judge_from_s(retention, topics, rate)
    verdicts = []
    for transport in dict.fromkeys(summary["transport"]):
        row = summary[summary["transport"] == transport].iloc[-1].to_dict()
        series = _server_series(load[load["repeat"] == row.get("repeat", 0)]
                                if "repeat" in load else load, transport)
        verdicts.append(_judge(series, start, row, transport, min_judged_s))
    return verdicts


def timeseries(load: pd.DataFrame, bin_s: float = _BIN_S) -> pd.DataFrame:
    """Server RSS (MiB), open files, connections and CPU % per ``bin_s``, per transport."""
    frames = []
    for transport in dict.fromkeys(load["transport"]):
        series = _server_series(load, transport)
        if len(series) < 2:
            continue
        cpu = series["cpu_user_s"] + series["cpu_system_s"]
        series = series.assign(bin=(series["t"] // bin_s) * bin_s, cpu=cpu, rss=_rss_mib(series))
        grouped = series.groupby("bin")
        frame = pd.DataFrame({
            "transport": transport,
            "t_s": grouped["t"].min().index.to_numpy(float),
            "rss_mib": grouped["rss"].max().to_numpy(),
            "open_files": grouped["open_files"].max().to_numpy(),
            "connections": grouped["connections"].max().to_numpy(),
            "cpu_pct": ((grouped["cpu"].max() - grouped["cpu"].min())
                        / (grouped["t"].max() - grouped["t"].min()).replace(0, np.nan) * 100).to_numpy(),
        })
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def json_safe(values: dict) -> dict:
    """NaN (not measured) as null: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}
