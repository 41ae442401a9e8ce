"""What a fault cost, per point: recovery time, loss, failed publishes, the reconnect storm.

Inputs are what every point already leaves behind, so any engine works: the
load generator's raw ``samples.parquet`` (``subscriber, sent_ns, recv_ns`` on
the monotonic clock the whole host shares), its ``counters.json`` (``lost``,
``publish_failed``, ``recovery`` when the engine reports them) and the
process samples (``load.parquet`` rows), plus the driver's fault events.

Definitions (docs/DESIGN.md, "Faults and soak"):

- A subscriber has *recovered* from a fault at the first delivery of a message
  published after the fault (such a message can only arrive over a new
  connection, or, for a cut, a resumed one). ``recovery_s`` = that delivery's
  receive time minus the fault's time, so it includes ``down_s`` and the new
  server's start; ``recovery_after_up_s`` counts from the new server answering.
  ``recovery_s_max`` is the slowest subscriber of the slowest fault: "every
  subscriber is receiving again after at most this long".
- A subscriber that was receiving before a fault and receives nothing published
  after it has *not recovered*: the point's status becomes ``unrecovered``.
- After a fault the epoch survives (kill-worker: the broker holds it), a client
  reset is a failure: status ``reset``.
- The reconnect storm: the server's CPU (% of one core) in 0.5 s windows over
  the 10 s after the server is back; ``server_cpu_peak_pct`` is the highest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..measure.validity import classify
from ..scenario.faults import loss_allowed, reset_allowed

__all__ = ["FAULT_COLUMNS", "STORM_WINDOW_S", "annotate_row",
           "recovery"]

#: Added to summary.csv after the harness's columns (readers tolerate added columns).
FAULT_COLUMNS = ("fault", "fault_count", "recovery_s_max", "recovery_after_up_s_max",
                 "unrecovered", "publish_failed", "server_cpu_peak_pct", "resets",
                 "lost_across_fault")
STORM_WINDOW_S = 10.0
_STORM_BIN_S = 0.5
_NAN = float("nan")


def recovery(events: list[dict], samples: pd.DataFrame) -> list[dict]:
    """Per fault: recovery times, slowest subscriber, subscribers that never came back."""
    out: list[dict] = []
    if samples is None or not len(samples):
        return [{"n": e.get("n"), "recovery_s_max": _NAN, "recovery_after_up_s_max": _NAN,
                 "receiving_before": 0, "unrecovered": 0} for e in events]
    sub = samples["subscriber"].to_numpy(np.int64)
    sent = samples["sent_ns"].to_numpy(np.int64)
    recv = samples["recv_ns"].to_numpy(np.int64)
    starts = [int(e.get("fault_ns") or 0) for e in events]
    for i, event in enumerate(events):
        fault = starts[i]
        if not fault:
            continue
        following = starts[i + 1] if i + 1 < len(starts) and starts[i + 1] else np.iinfo(np.int64).max
        before = np.unique(sub[recv < fault])
        after_mask = (sent > fault) & (sent < following)
        first = (pd.Series(recv[after_mask]).groupby(sub[after_mask]).min()
                 if after_mask.any() else pd.Series(dtype=np.int64))
        missing = np.setdiff1d(before, first.index.to_numpy(np.int64))
        up = int(event.get("up_ns") or fault)
        delays = (first.to_numpy(np.int64) - fault) / 1e9
        out.append({
            "n": event.get("n"),
            "receiving_before": int(len(before)),
            "recovered": int(len(first)),
            "unrecovered": int(len(missing)),
            "recovery_s_max": float(delays.max()) if len(delays) else _NAN,
            "recovery_s_p50": float(np.median(delays)) if len(delays) else _NAN,
            "recovery_after_up_s_max": (float((first.to_numpy(np.int64) - up).max() / 1e9)
                                        if len(first) else _NAN),
            "down_s": (int(event["up_ns"]) - fault) / 1e9 if event.get("up_ns") else _NAN,
        })
    return out


def _storm_peak(load: pd.DataFrame | None, ups_t_s: list[float]) -> float:
    """Highest server CPU % of a core in 0.5 s bins over the STORM_WINDOW_S after each ``up``."""
    if load is None or not len(load) or not ups_t_s:
        return _NAN
    rows = load[load["process"] == "server"].sort_values("t_s")
    if len(rows) < 2:
        return _NAN
    t = rows["t_s"].to_numpy(float)
    # schedstat nanoseconds when sampled (ticks of 10 ms are coarse for 0.5 s bins)
    if "cpu_sched_s" in rows and rows["cpu_sched_s"].notna().all():
        cpu = rows["cpu_sched_s"].to_numpy(float)
    else:
        cpu = (rows["cpu_user_s"] + rows["cpu_system_s"]).to_numpy(float)
    peak = _NAN
    for up in ups_t_s:
        edges = np.arange(up, up + STORM_WINDOW_S + 1e-9, _STORM_BIN_S)
        for lo, hi in zip(edges[:-1], edges[1:]):
            inside = (t >= lo) & (t <= hi)
            if inside.sum() < 2:
                continue
            tt, cc = t[inside], cpu[inside]
            if tt[-1] - tt[0] < _STORM_BIN_S / 2:
                continue
            pct = (cc[-1] - cc[0]) / (tt[-1] - tt[0]) * 100.0
            peak = pct if math.isnan(peak) else max(peak, pct)
    return peak


def _measure_t0(load: pd.DataFrame | None) -> float | None:
    """Sampler time (t_s) when the measurement started: its first ``measure`` sample."""
    if load is None or not len(load) or "phase" not in load:
        return None
    measure = load[load["phase"] == "measure"]
    return float(measure["t_s"].min()) if len(measure) else None


def _count(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _NAN


def _fault_status(row: dict, kind: str, unrecovered: int, driver_failed: bool) -> str:
    """A fault point is judged by recovery and loss: the client errors a fault causes
    (connections refused while the server is down, resets) are its expected symptoms."""
    status = str(row.get("status") or "ok")
    if status not in ("ok", "lost", "error"):
        return status
    if driver_failed:
        return "error"
    if unrecovered:
        return "unrecovered"
    if (row.get("lost") or 0) and not loss_allowed(kind):
        return "lost"
    if _resets(row) and not reset_allowed(kind):
        return "reset"
    return "ok"


def _resets(row: dict) -> float:
    resets = row.get("resets")
    return float(resets) if isinstance(resets, (int, float)) and resets == resets else 0.0


def annotate_row(row: dict, *, kind: str, driver_summary: dict,
                 samples: pd.DataFrame | None, load: pd.DataFrame | None,
                 counters: dict) -> dict:
    """Add the fault columns to a summary row; adjust status and warnings.

    Returns the details for meta.json (per fault; NaN as None, JSON has no NaN).
    """
    events = list(driver_summary.get("events") or [])
    measure_ns = int(driver_summary.get("measure_ns") or 0)
    per_fault = recovery(events, samples)
    t0 = _measure_t0(load)
    ups = []
    if t0 is not None and measure_ns:
        ups = [t0 + (int(e.get("up_ns") or e.get("fault_ns") or 0) - measure_ns) / 1e9
               for e in events if e.get("fault_ns")]
    engine_recovery = counters.get("recovery") if isinstance(counters.get("recovery"), dict) else {}
    publish_failed = counters.get("publish_failed")
    unrecovered = sum(f.get("unrecovered", 0) for f in per_fault)
    maxima = [f["recovery_s_max"] for f in per_fault if not math.isnan(f["recovery_s_max"])]
    after_up = [f["recovery_after_up_s_max"] for f in per_fault
                if not math.isnan(f["recovery_after_up_s_max"])]
    row.update({
        "fault": kind,
        "fault_count": len(events),
        "recovery_s_max": max(maxima) if maxima and not unrecovered else _NAN,
        "recovery_after_up_s_max": max(after_up) if after_up and not unrecovered else _NAN,
        "unrecovered": unrecovered,
        "publish_failed": int(publish_failed) if isinstance(publish_failed, (int, float)) else _NAN,
        "server_cpu_peak_pct": _storm_peak(load, ups),
        # The engine's view (clients/counters.py), when it reports one: epoch resets the
        # clients saw, and the gap they counted as lost across the fault.
        "resets": _count(engine_recovery.get("resets", counters.get("resets"))),
        "lost_across_fault": _count(engine_recovery.get("lost_across_fault")),
    })
    warnings = [w for w in str(row.get("warnings") or "").split("; ") if w]
    if driver_summary.get("error"):
        warnings.append(str(driver_summary["error"]))
    if len(events) < int(driver_summary.get("count") or 0):
        warnings.append(f"only {len(events)} of {driver_summary.get('count')} faults happened")
    lost = row.get("lost") or 0
    if lost and loss_allowed(kind):
        # A SIGKILL loses what the killed process had acknowledged but not written: counted, allowed.
        warnings = [w for w in warnings if not w.upper().startswith("LOST")]
        warnings.append(f"{lost} message(s) lost across the {kind}, in flight when it was "
                        "killed: allowed for this fault")
    if unrecovered:
        warnings.append(f"NOT RECOVERED: {unrecovered} subscriber(s) received nothing published "
                        f"after a {kind} fault")
    if _resets(row) and not reset_allowed(kind):
        warnings.append(f"RESET: clients were reset {_resets(row):.0f} time(s) after the {kind}: "
                        "their cursors should have resumed (the epoch is the broker's, it "
                        "survives a worker)")
    # The client errors a fault causes are its expected symptoms, not a broken measurement.
    away = ("expected while the killed worker's clients reconnect" if kind == "kill-worker"
            else "expected while the server is away")
    warnings = [w if "client errors: see the load generator" not in w else
                w.split(":")[0] + f" during the {kind}: {away}"
                for w in warnings if w != "the point is not trustworthy"]
    row["status"] = _fault_status(row, kind, unrecovered, bool(driver_summary.get("error")))
    judged = classify(row, expect_loss=loss_allowed(kind))
    row.update(validity=judged.validity, validity_notes=judged.notes)
    row["warnings"] = "; ".join(dict.fromkeys(warnings))
    per_fault = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                  for k, v in f.items()} for f in per_fault]
    return {"per_fault": per_fault, "engine_recovery": engine_recovery}
