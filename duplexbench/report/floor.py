"""Every transport as a multiple of plain TCP's cost at the same point: the floor ratios.

Why: "WebSocket costs 0.4 s of server CPU per 1,000 messages" says little until it is
set against the least a message stream costs on the same machine, the same hub and
the same load: the ``tcp`` transport (one envelope per line on a plain TCP socket,
docs/floor.md). When a run has tcp, each other row's server CPU per delivered
message, IP bytes per delivered message, p50 and p99 are divided by tcp's at the same
point (same run, pattern, upstream, subscribers, rate, payload, delay, repeat), in
the summary table and in one figure.

Only comparable rows give a ratio (measure/validity.py: ``ok``, ``server-saturated``,
on both sides); a row without a comparable tcp row at its point shows n/a. The
interval is the one the report uses for a one-repeat figure (report/noise.py's
relative half-widths of each side, combined as the findings combine them); byte
counts are exact, so bytes get no interval, and a ratio whose interval holds 1 is a tie.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..measure.validity import comparable
from . import colors
from .derived import combine

__all__ = [
    "FLOOR",
    "FLOOR_METRICS",
    "POINT_KEYS",
    "floor_columns",
    "floor_figure",
    "floor_items",
    "floor_ratios",
    "format_floor",
    "run_floor",
]

#: The transport every other is divided by.
FLOOR = "tcp"
#: Metric column -> (short heading, noise column of report/noise.py or "" for exact counts).
FLOOR_METRICS: dict[str, tuple[str, str]] = {
    "server_cpu_s_per_1k": ("server CPU", "noise_server_cpu_s_per_1k"),
    "ip_bytes_per_msg": ("IP bytes", ""),
    "lat_p50_ms": ("p50", "noise_lat_p50_ms"),
    "lat_p99_ms": ("p99", "noise_lat_p99_ms"),
}
#: What "the same point" means: every one of these that the rows record must match.
POINT_KEYS = ("run", "pattern", "upstream", "clients", "rate_msgs_s", "payload_bytes",
              "delay_ms", "keepalive", "tls", "engine", "proxy", "fault", "repeat")


def _ok(value) -> bool:
    return isinstance(value, str) and comparable(value) or value in ("", None) or (
        isinstance(value, float) and math.isnan(value))


def _key(row: pd.Series, keys: list[str]) -> tuple:
    return tuple("" if pd.isna(row[k]) else str(row[k]) for k in keys)


def floor_ratios(frame: pd.DataFrame, noise: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per row of ``frame`` (derived.combine's columns): ``floor_<metric>`` = the row's
    metric ÷ tcp's at the same point, with ``floor_<metric>_lo`` / ``_hi`` (its interval;
    equal to the ratio for exact counts). NaN where either side is missing, not
    comparable, or zero. ``noise`` (report/noise.point_noise, same index) widens the
    interval; without it, lo = hi = the ratio. Empty when the frame has no tcp row."""
    out = pd.DataFrame(index=frame.index)
    if frame.empty or "transport" not in frame.columns or FLOOR not in set(frame["transport"]):
        return out
    keys = [k for k in POINT_KEYS if k in frame.columns]
    valid = frame["validity"] if "validity" in frame.columns else pd.Series("", index=frame.index)
    floors: dict[tuple, int] = {}
    for index, row in frame[frame["transport"] == FLOOR].iterrows():
        if _ok(valid[index]):
            floors[_key(row, keys)] = index
    for metric, (_, noise_column) in FLOOR_METRICS.items():
        ratio = pd.Series(np.nan, index=frame.index)
        lo, hi = ratio.copy(), ratio.copy()
        if metric in frame.columns:
            for index, row in frame.iterrows():
                base_index = floors.get(_key(row, keys))
                if base_index is None or not _ok(valid[index]):
                    continue
                value, base = row[metric], frame.at[base_index, metric]
                if pd.isna(value) or pd.isna(base) or not base > 0:
                    continue
                r = float(value) / float(base)
                n_row = n_base = 0.0
                if noise is not None and noise_column and noise_column in noise.columns:
                    n_row = _noise(noise.at[index, noise_column])
                    n_base = _noise(noise.at[base_index, noise_column])
                ratio[index] = r
                lo[index] = r * (1 - n_row) / (1 + n_base)
                hi[index] = r * (1 + n_row) / max(1 - n_base, 1e-9)
        out[f"floor_{metric}"], out[f"floor_{metric}_lo"], out[f"floor_{metric}_hi"] = ratio, lo, hi
    return out


def _noise(value) -> float:
    """A relative half-width, or 0 (no interval) where report/noise.py could not tell."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return min(value, 0.99) if math.isfinite(value) and value > 0 else 0.0


def format_floor(ratio: float, lo: float, hi: float) -> str:
    """``2.1× (1.8–2.5)``; ``1.0×`` alone when the interval is the ratio (exact counts)."""
    if pd.isna(ratio):
        return "n/a"
    text = f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.1f}×"
    if pd.notna(lo) and pd.notna(hi) and (hi - lo) > 1e-9:
        text += f" ({lo:.2f}–{hi:.2f})"
    return text


def floor_figure(frame: pd.DataFrame, ratios: pd.DataFrame, where: str = ""):
    """One figure: per metric, each transport's ratio to tcp (bars with their intervals) at
    every comparable point, the points side by side; a line at 1 is the floor itself.
    None when no row has a ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if ratios.empty:
        return None
    rows = frame.join(ratios)
    rows = rows[(rows["transport"] != FLOOR)]
    metrics = [m for m in FLOOR_METRICS if f"floor_{m}" in rows and rows[f"floor_{m}"].notna().any()]
    if not metrics:
        return None
    axis_keys = [k for k in ("pattern", "clients", "rate_msgs_s", "payload_bytes", "delay_ms")
                 if k in rows.columns and rows[k].dropna().nunique() > 1]
    rows = rows.copy()
    rows["_point"] = rows.apply(lambda r: " ".join(
        f"{'c=' if k == 'clients' else ''}{r[k]:g}" if isinstance(r[k], (int, float)) else str(r[k])
        for k in axis_keys) or "the point", axis=1)
    points = list(dict.fromkeys(rows["_point"]))
    transports = colors.order_transports(set(rows["transport"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    width = 0.8 / max(len(transports), 1)
    for ax, metric in zip(axes[0], metrics):
        for i, transport in enumerate(transports):
            part = rows[rows["transport"] == transport].groupby("_point", sort=False)[
                [f"floor_{metric}", f"floor_{metric}_lo", f"floor_{metric}_hi"]].median()
            part = part.reindex(points)
            x = np.arange(len(points)) + (i - (len(transports) - 1) / 2) * width
            value = part[f"floor_{metric}"].to_numpy(dtype=float)
            err = np.vstack([value - part[f"floor_{metric}_lo"].to_numpy(dtype=float),
                             part[f"floor_{metric}_hi"].to_numpy(dtype=float) - value])
            ax.bar(x, value, width, color=colors.color(transport), label=colors.label(transport),
                   yerr=np.nan_to_num(err), capsize=2)
        ax.axhline(1.0, color=colors.color(FLOOR), linestyle="--", linewidth=1)
        ax.set_xticks(np.arange(len(points)), points, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{FLOOR_METRICS[metric][0]} ÷ plain TCP", fontsize=9)
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("multiple of plain TCP (1 = the floor)")
    axes[0][-1].legend(fontsize=7)
    if where:
        fig.suptitle(where, fontsize=9)
    fig.tight_layout()
    return fig


def run_floor(run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One run's derived rows and their floor ratios (intervals from the run's own noise)."""
    frame = combine([run])
    if frame.empty or FLOOR not in set(frame["transport"]):
        return frame, pd.DataFrame(index=frame.index)
    noise = None
    try:  # the interval is a refinement: without samples the ratios stand alone
        from .noise import point_noise

        noise = point_noise(run.summary, run.samples(), run.load()).set_axis(frame.index)
    except Exception:
        noise = None
    return frame, floor_ratios(frame, noise)


def floor_columns(ratios: pd.DataFrame) -> dict[str, list[str]]:
    """Summary-table columns (heading -> cells, one per row): ``server CPU ×tcp`` ...; {}
    when the run has no tcp."""
    if ratios.empty or not len(ratios.columns):
        return {}
    out = {}
    for metric, (heading, _) in FLOOR_METRICS.items():
        column = f"floor_{metric}"
        if column in ratios and ratios[column].notna().any():
            out[f"{heading} ×tcp"] = [format_floor(*values) for values in zip(
                ratios[column], ratios[f"{column}_lo"], ratios[f"{column}_hi"])]
    return out


def floor_items(runs) -> list[tuple[str, str, str, object]]:
    """The report's figure (name, title, caption, matplotlib figure) for the first run
    with tcp; [] without one."""
    for run in runs:
        frame, ratios = run_floor(run)
        if ratios.empty or not len(ratios.columns):
            continue
        fig = floor_figure(frame, ratios)
        if fig is None:
            continue
        return [("floor_ratios", "Every transport as a multiple of plain TCP",
                 f"Run {run.label}: server CPU per delivered message, IP bytes per delivered "
                 "message, p50 and p99 of each transport divided by plain TCP's at the same "
                 "point (same pattern, subscribers, rate, payload; median over repeats); the "
                 "dashed line at 1 is plain TCP, the floor (docs/floor.md). Whiskers: the "
                 "95 % interval from each point's own noise (none for byte counts, which are "
                 "exact). Only points comparable on both sides.", fig)]
    return []
