"""Read results directories for the report, tolerant of what a report may meet.

The report must open any run: complete, interrupted (no samples yet), older or
newer (extra columns). When ``duplexbench.measure.results.load_run`` exists it is the
reader of record and is used; otherwise the files are read directly with pandas
following docs/DESIGN.md, so the report does not depend on the writer's module.
Either way the report sees the same shape: ``ReportRun`` with a short label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ReportRun", "load_runs", "load_run_dir", "NUMERIC_COLUMNS", "is_complete"]

#: summary.csv columns the report computes with; coerced to numbers (NaN when absent).
NUMERIC_COLUMNS = (
    "point", "repeat", "clients", "rate_msgs_s", "payload_bytes", "message_bytes", "delay_ms",
    "duration_s", "sent", "expected", "delivered", "lost", "duplicated", "reordered",
    "throughput_msgs_s", "lat_p50_ms", "lat_p90_ms", "lat_p99_ms", "lat_p999_ms", "lat_max_ms",
    "lat_mean_ms", "lat_samples", "sent_p50_ms", "sent_p90_ms", "sent_p99_ms", "sent_p999_ms",
    "sent_max_ms", "sent_mean_ms", "server_cpu_s", "server_cpu_pct", "server_cpu_tick_s",
    "server_rss_mib_max", "late",
    "server_connections_max", "bytes_down_per_msg", "bytes_up_per_msg", "overhead_down_per_msg",
    "overhead_up_per_msg", "ip_bytes_down_per_msg", "ip_bytes_up_per_msg",
    "segments_down_per_msg", "segments_up_per_msg", "http_requests_per_msg",
    "pub_bytes_up_per_msg", "pub_http_requests_per_msg", "reconnects", "client_cpu_s",
    "client_cpu_pct", "client_cpu_tick_s", "loadgen_procs", "loadgen_cores",
)
_TEXT_COLUMNS = ("run_id", "scenario", "engine", "transport", "pattern", "upstream", "status",
                 "warnings", "keepalive", "validity", "validity_notes")


@dataclass(frozen=True)
class ReportRun:
    """One results directory as the report uses it."""

    path: Path
    label: str  # short name in legends: "A", "B", ... when several runs, else the run id
    meta: dict[str, Any]
    summary: pd.DataFrame  # every NUMERIC_COLUMNS column present, numeric; never None
    source: Any = field(default=None, repr=False, compare=False)  # results.Run when available

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    def samples(self) -> pd.DataFrame | None:
        """Raw latency samples, or None when the run wrote none (e.g. interrupted early)."""
        return self._parquet("samples", "samples.parquet", "samples")

    def load(self) -> pd.DataFrame | None:
        """Process samples (server / loadgen CPU, RSS over time), or None."""
        return self._parquet("load", "load.parquet", "load")

    def _parquet(self, method: str, name: str, folder: str) -> pd.DataFrame | None:
        if self.source is not None and hasattr(self.source, method):
            try:
                frame = getattr(self.source, method)()
            except FileNotFoundError:
                return None
            return frame
        from ..measure.results import read_point_files  # one file per point (schema 2)

        return read_point_files(self.path, name, folder)


def is_complete(meta: dict[str, Any]) -> bool:
    """A run is complete only when it says so twice (status and the boolean)."""
    return meta.get("status") == "complete" and meta.get("complete", True) is not False


def _normalise(summary: pd.DataFrame) -> pd.DataFrame:
    summary = summary.copy()
    if "server_rss_mib_max" not in summary.columns and "server_rss_mb_max" in summary.columns:
        summary["server_rss_mib_max"] = pd.to_numeric(summary["server_rss_mb_max"],
                                                      errors="coerce") * 1e6 / 2**20
    for column in NUMERIC_COLUMNS:
        if column not in summary.columns:
            summary[column] = np.nan
        summary[column] = pd.to_numeric(summary[column], errors="coerce")
    for column in _TEXT_COLUMNS:
        if column not in summary.columns:
            summary[column] = ""
        values = summary[column].astype(object)  # an all-empty column reads as float NaN
        summary[column] = values.where(values.notna(), "").astype(str)
    if len(summary) and (summary["validity"] == "").any():
        from ..measure.validity import validity_column

        summary["validity"] = validity_column(summary.assign(
            validity=summary["validity"].replace("", None)))
    return summary


def _read_direct(path: Path) -> tuple[dict, pd.DataFrame]:
    from ..measure.results import SUMMARY_DTYPES

    meta_file, summary_file = path / "meta.json", path / "summary.csv"
    if not meta_file.exists():
        raise FileNotFoundError(f"{path}: no meta.json: not a duplexbench results directory")
    meta = json.loads(meta_file.read_text())
    if summary_file.exists() and summary_file.stat().st_size > 0:
        summary = pd.read_csv(summary_file, keep_default_na=True, dtype=SUMMARY_DTYPES)
    else:  # a run interrupted before its first point finished
        summary = pd.DataFrame()
    return meta, summary


def load_run_dir(path: str | Path, label: str | None = None) -> ReportRun:
    """Read one results directory (follows the `latest` symlink)."""
    path = Path(path).resolve()
    source = None
    try:  # the results module owns the format; use it when it is there
        from ..measure.results import load_run  # type: ignore[attr-defined]
    except ImportError:
        load_run = None
    if load_run is not None:
        source = load_run(path)
        meta = dict(source.meta)
        summary = source.summary if source.summary is not None else pd.DataFrame()
    else:
        meta, summary = _read_direct(path)
    meta.setdefault("run_id", path.name)
    return ReportRun(path, label or str(meta["run_id"]), meta, _normalise(summary), source)


def load_runs(paths) -> list[ReportRun]:
    """Several runs get letter labels ("A", "B", …) so legends stay short."""
    paths = list(paths)
    if len(paths) == 1:
        return [load_run_dir(paths[0])]
    return [load_run_dir(p, label=chr(ord("A") + i)) for i, p in enumerate(paths)]
