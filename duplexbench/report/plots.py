"""The report's figures, as functions of result tables (no I/O, no pyplot state).

Each function takes the aggregated summary (``derived.aggregate(derived.combine(runs))``,
one row per run x transport x load point) or raw samples, and returns a matplotlib
``Figure`` — or None when the run holds nothing worth drawing (a delivery figure
with every count at zero, a sweep figure for an axis the run did not sweep).
Figures are built with ``matplotlib.figure.Figure``, not pyplot, so the same code
serves the headless report (Agg, PNG bytes) and the notebook (inline display).
Every transport keeps its colour from ``colors``; several runs differ by hatch
(bars) or line style (lines), never by colour.
"""

from __future__ import annotations

import functools
import io

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..measure.validity import comparable
from . import colors
from .derived import AXIS_LABELS, ReferencePoint, swept_axes

__all__ = [
    "RC",
    "to_png",
    "latency_cdf",
    "latency_vs",
    "cost_figure",
    "server_cpu_per_1k",
    "server_rss_per_connection",
    "bytes_per_message",
    "requests_per_message",
    "delivery",
    "cpu_server_vs_loadgen",
    "latency_over_time",
    "latency_histogram",
]

#: Sizes chosen to read at 100 % zoom on a laptop screen (figure ~ 900 px wide).
RC = {
    "font.size": 11,
    "axes.titlesize": 12.5,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 110,
}
FIGSIZE = (9.0, 4.6)


def _styled(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return function(*args, **kwargs)

    return wrapper


def to_png(figure: Figure) -> bytes:
    """PNG bytes of `figure` (Agg via the figure's own canvas: no global backend)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(RC):
        figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _runs(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["run"])) if "run" in frame.columns else [""]


def _series_label(transport: str, run: str, runs: list[str]) -> str:
    name = colors.label(transport)
    return f"{name} ({run})" if len(runs) > 1 else name


def _thousands(axis) -> None:
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))


def _log_latency_axis(ax, axis: str = "x") -> None:
    """Log scale labelled 0.5, 1, 2, 5, 10 … ms: plain numbers a reader can quote."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _fix_other_axes(frame: pd.DataFrame, axis: str, point: ReferencePoint | None) -> pd.DataFrame:
    """Keep the rows where every swept axis except `axis` sits at the reference point."""
    if point is None:
        return frame
    mask = pd.Series(True, index=frame.index)
    for other in swept_axes(frame):
        value = point.values.get(other)
        if other != axis and value is not None and not pd.isna(value):
            mask &= np.isclose(frame[other].astype(float), float(value))
    return frame[mask]


def _x_axis(ax, frame: pd.DataFrame, axis: str) -> None:
    values = frame[axis].dropna()
    if len(values) and values.min() > 0 and values.max() / values.min() >= 20:
        ax.set_xscale("log")
    ax.set_xticks(sorted(values.unique()))
    ax.xaxis.set_minor_formatter(NullFormatter())  # the sweep's own values are the labels
    _thousands(ax.xaxis)
    ax.set_xlabel(AXIS_LABELS[axis])


def _lines(ax, frame: pd.DataFrame, axis: str, column: str, *, linestyle=None, suffix="") -> None:
    runs = _runs(frame)
    for r, run in enumerate(runs):
        for transport in colors.order_transports(frame["transport"].unique()):
            rows = frame[(frame["run"] == run) & (frame["transport"] == transport)]
            rows = rows[rows[column].notna()].sort_values(axis)
            if rows.empty:
                continue
            st = colors.style(transport)
            ax.plot(
                rows[axis], rows[column], color=st.color, marker=st.marker, markersize=6,
                linewidth=2, linestyle=linestyle or colors.RUN_LINESTYLES[r % 4],
                label=_series_label(transport, run, runs) + suffix,
            )
            _ring_not_comparable(ax, rows, axis, column)


#: Legend text of the ring drawn around points that cannot carry a comparison.
NOT_COMPARABLE = "not comparable (validity: load generator saturated, lost, ...)"


def _ring_not_comparable(ax, rows: pd.DataFrame, x: str, y: str) -> None:
    """A hollow ring around points whose validity keeps them out of comparisons."""
    if "validity" not in rows.columns:
        return
    bad = rows[~rows["validity"].map(lambda v: comparable(v) or not v or v != v)]
    if bad.empty:
        return
    labelled = NOT_COMPARABLE in ax.get_legend_handles_labels()[1]
    ax.scatter(bad[x], bad[y], s=170, facecolors="none", edgecolors="black", linewidths=1.6,
               zorder=5, label=None if labelled else NOT_COMPARABLE)


def _bars(ax, frame: pd.DataFrame, column: str, *, fmt="{:,.3g}") -> None:
    """One group per transport, one bar per run (hatched by run), value printed on top."""
    runs = _runs(frame)
    transports = colors.order_transports(frame["transport"].unique())
    width = 0.8 / max(len(runs), 1)
    for r, run in enumerate(runs):
        for i, transport in enumerate(transports):
            rows = frame[(frame["run"] == run) & (frame["transport"] == transport)]
            value = rows[column].iloc[0] if len(rows) else np.nan
            x = i - 0.4 + width * (r + 0.5)
            if pd.isna(value):
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=9, color="0.4")
                continue
            ax.bar(x, value, width * 0.92, color=colors.color(transport), edgecolor="black",
                   linewidth=0.6, hatch=colors.RUN_HATCHES[r % len(colors.RUN_HATCHES)])
            validity = rows["validity"].iloc[0] if "validity" in rows.columns else ""
            note = "" if comparable(validity) or not validity or validity != validity \
                else f"\n({validity})"
            ax.annotate(fmt.format(value) + note, (x, value), ha="center", va="bottom",
                        fontsize=9, xytext=(0, 2), textcoords="offset points")
    ticks = [colors.label(t) for t in transports]
    if len(runs) > 1:
        ticks = [f"{t}\n" + " | ".join(runs) for t in ticks]
    ax.set_xticks(range(len(transports)), ticks)
    ax.grid(axis="x", visible=False)
    ax.margins(y=0.15)


def _run_legend(ax, runs: list[str]) -> None:
    """With several runs, a legend for the hatches (colours already name the transports)."""
    if len(runs) < 2:
        return
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="white", edgecolor="black", hatch=colors.RUN_HATCHES[i % 6],
                     label=f"run {run}") for i, run in enumerate(runs)]
    ax.legend(handles=handles, loc="upper left", frameon=False)



# ---- latency ---------------------------------------------------------------------------


@_styled
def latency_cdf(samples: pd.DataFrame, title: str = "Latency distribution") -> Figure | None:
    """Empirical CDF of latency (from the intended send time) per transport, log x axis.

    `samples` holds the rows of samples.parquet to draw, plus a `run` column when
    several runs share the figure.
    """
    if samples is None or samples.empty or samples["latency_ms"].dropna().empty:
        return None
    samples = samples if "run" in samples.columns else samples.assign(run="")
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    runs = _runs(samples)
    for r, run in enumerate(runs):
        for transport in colors.order_transports(samples["transport"].unique()):
            values = samples.loc[(samples["run"] == run) & (samples["transport"] == transport),
                                 "latency_ms"].dropna().to_numpy()
            values = np.sort(values[values > 0])
            if not len(values):
                continue
            fraction = np.arange(1, len(values) + 1) / len(values)
            ax.step(values, fraction * 100, where="post", color=colors.color(transport),
                    linewidth=2, linestyle=colors.RUN_LINESTYLES[r % 4],
                    label=f"{_series_label(transport, run, runs)} (n={len(values):,})")
    _log_latency_axis(ax)
    ax.set_xlabel("latency from intended send time (ms, log scale)")
    ax.set_ylabel("deliveries at or below (%)")
    ax.set_ylim(0, 101)
    for level in (50, 99):
        ax.axhline(level, color="0.5", linewidth=0.8, linestyle=":")
        ax.annotate(f"p{level}", (1.0, level), xycoords=("axes fraction", "data"), fontsize=9,
                    color="0.4", xytext=(3, -3), textcoords="offset points")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return figure


@_styled
def latency_vs(agg: pd.DataFrame, axis: str, point: ReferencePoint | None = None,
               percentiles=("p50", "p99")) -> Figure | None:
    """Latency percentiles against one swept axis (None when `axis` is not swept)."""
    if agg.empty or axis not in swept_axes(agg):
        return None
    frame = _fix_other_axes(agg, axis, point)
    figure = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * 1.05))
    axes = figure.subplots(1, len(percentiles), sharey=False)
    for ax, p in zip(np.atleast_1d(axes), percentiles):
        _lines(ax, frame, axis, f"lat_{p}_ms")
        _x_axis(ax, frame, axis)
        ax.set_ylabel(f"{p} latency (ms)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{p} latency vs {AXIS_LABELS[axis].split(' (')[0]}")
    np.atleast_1d(axes)[0].legend(loc="best")
    figure.tight_layout()
    return figure


# ---- costs -----------------------------------------------------------------------------


@_styled
def cost_figure(agg: pd.DataFrame, column: str, ylabel: str, title: str,
                point: ReferencePoint | None = None, fmt: str = "{:,.3g}") -> Figure | None:
    """A per-transport cost: lines against the main swept axis, else bars at the one point."""
    if agg.empty or agg[column].dropna().empty:
        return None
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    swept = swept_axes(agg)
    if swept:
        axis = swept[0]
        frame = _fix_other_axes(agg, axis, point)
        _lines(ax, frame, axis, column)
        _x_axis(ax, frame, axis)
        ax.legend(loc="best")
    else:
        _bars(ax, agg, column, fmt=fmt)
        _run_legend(ax, _runs(agg))
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    return figure


def server_cpu_per_1k(agg, point=None):
    return cost_figure(agg, "server_cpu_s_per_1k", "server CPU (s per 1,000 delivered messages)",
                       "Server CPU per 1,000 delivered messages (lower is cheaper)", point)


@_styled
def server_rss_per_connection(agg: pd.DataFrame, point: ReferencePoint | None = None) -> Figure | None:
    """Peak RSS against open connections (the slope is the per-connection cost); None
    without a sweep of subscribers (RSS ÷ connections would be mostly the baseline)."""
    if agg.empty or agg["server_rss_mib_max"].dropna().empty:
        return None
    frame = _fix_other_axes(agg, "clients", point)
    if frame["server_connections_max"].dropna().nunique() < 2:
        return None  # memory per connection comes only from a sweep of subscribers
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    runs = _runs(frame)
    for r, run in enumerate(runs):
        for transport in colors.order_transports(frame["transport"].unique()):
            rows = frame[(frame["run"] == run) & (frame["transport"] == transport)]
            rows = rows.dropna(subset=["server_connections_max", "server_rss_mib_max"])
            if rows.empty:
                continue
            rows = rows.sort_values("server_connections_max")
            st = colors.style(transport)
            slope = rows["server_rss_kib_per_conn"].iloc[0]
            ax.plot(rows["server_connections_max"], rows["server_rss_mib_max"], color=st.color,
                    marker=st.marker, markersize=6, linewidth=2,
                    linestyle=colors.RUN_LINESTYLES[r % 4],
                    label=f"{_series_label(transport, run, runs)}: {slope:,.1f} KiB/connection")
    ax.set_xlabel("open connections on the server (peak)")
    ax.set_ylabel("server peak RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Server memory against open connections (slope = memory per connection)")
    ax.legend(loc="lower right")  # lines start at the baseline: the lower right stays empty
    return figure


def requests_per_message(agg, point=None):
    return cost_figure(agg, "http_requests_per_msg", "HTTP requests per delivered message",
                       "HTTP requests per delivered message (subscriber connections)", point,
                       fmt="{:.3f}")


@_styled
def bytes_per_message(agg: pd.DataFrame, point: ReferencePoint | None = None) -> Figure | None:
    """Stacked bars at the reference point: payload, then overhead down and up."""
    frame = agg if point is None else agg[point.mask(agg)]
    if frame.empty or frame["bytes_down_per_msg"].dropna().empty:
        return None
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    runs, transports = _runs(frame), colors.order_transports(frame["transport"].unique())
    width = 0.8 / len(runs)
    parts = (
        ("message_bytes", "message (envelope + payload)", 1.0, ""),
        ("overhead_down_per_msg", "overhead server→client (headers, framing)", 0.55, ""),
        ("overhead_up_per_msg", "overhead client→server (requests, masks)", 0.25, "//"),
    )
    for r, run in enumerate(runs):
        for i, transport in enumerate(transports):
            rows = frame[(frame["run"] == run) & (frame["transport"] == transport)]
            if rows.empty:
                continue
            row, x, bottom = rows.iloc[0], i - 0.4 + width * (r + 0.5), 0.0
            for column, _, alpha, hatch in parts:
                value = 0.0 if pd.isna(row[column]) else float(row[column])
                ax.bar(x, value, width * 0.92, bottom=bottom, color=colors.color(transport),
                       alpha=alpha, hatch=hatch, edgecolor="black", linewidth=0.6)
                bottom += value
            ax.annotate(f"{bottom:,.0f} B", (x, bottom), ha="center", va="bottom", fontsize=9,
                        xytext=(0, 2), textcoords="offset points")
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="0.35", alpha=a, hatch=h, edgecolor="black", label=text)
               for _, text, a, h in parts]
    ax.legend(handles=handles, loc="upper right", frameon=False)
    ticks = [colors.label(t) for t in transports]
    if len(runs) > 1:
        ticks = [f"{t}\n" + " | ".join(runs) for t in ticks]
    ax.set_xticks(range(len(transports)), ticks)
    ax.grid(axis="x", visible=False)
    ax.margins(y=0.2)
    ax.set_ylabel("bytes on the wire per delivered message (B)")
    ax.set_title("Bytes per delivered message: payload and overhead")
    return figure


@_styled
def delivery(agg: pd.DataFrame) -> Figure | None:
    """Lost, duplicated and reordered messages per transport (None when all are zero)."""
    kinds = ("lost", "duplicated", "reordered")
    if agg.empty or not (agg[list(kinds)].fillna(0).to_numpy() > 0).any():
        return None
    totals = agg.groupby(["run", "transport"], sort=False)[list(kinds)].sum().reset_index()
    figure = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * 0.9))
    axes = figure.subplots(1, 3, sharey=True)
    for ax, kind in zip(axes, kinds):
        _bars(ax, totals, kind, fmt="{:,.0f}")
        ax.set_title(kind)
        ax.tick_params(axis="x", labelrotation=30)
    axes[0].set_ylabel("messages (all load points)")
    figure.suptitle("Delivery problems (expected: all zero)")
    figure.tight_layout()
    return figure


@_styled
def cpu_server_vs_loadgen(agg: pd.DataFrame, point: ReferencePoint | None = None) -> Figure | None:
    """Server and load-generator CPU (% of one core) side by side: who was the limit?"""
    if agg.empty or agg[["server_cpu_pct", "client_cpu_pct"]].dropna(how="all").empty:
        return None
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    swept, runs = swept_axes(agg), _runs(agg)
    if swept and len(runs) == 1:
        axis = swept[0]
        frame = _fix_other_axes(agg, axis, point)
        _lines(ax, frame, axis, "server_cpu_pct", linestyle="-", suffix=": server")
        _lines(ax, frame, axis, "client_cpu_pct", linestyle=":", suffix=": load generator")
        _x_axis(ax, frame, axis)
    else:
        frame = agg if point is None else agg[point.mask(agg)]
        transports = colors.order_transports(frame["transport"].unique())
        slots = [(run, role) for run in runs for role in ("server", "client")]
        width = 0.8 / len(slots)
        for i, transport in enumerate(transports):
            for s, (run, role) in enumerate(slots):
                rows = frame[(frame["run"] == run) & (frame["transport"] == transport)]
                if rows.empty or pd.isna(rows[f"{role}_cpu_pct"].iloc[0]):
                    continue
                value, x = rows[f"{role}_cpu_pct"].iloc[0], i - 0.4 + width * (s + 0.5)
                ax.bar(x, value, width * 0.92, color=colors.color(transport), edgecolor="black",
                       linewidth=0.6, alpha=1.0 if role == "server" else 0.45,
                       hatch=colors.RUN_HATCHES[runs.index(run) % 6])
                ax.annotate(f"{value:.0f}%", (x, value), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(transports)), [colors.label(t) for t in transports])
        ax.grid(axis="x", visible=False)
        from matplotlib.patches import Patch

        handles = [Patch(facecolor="0.35", alpha=1.0, label="server (solid)"),
                   Patch(facecolor="0.35", alpha=0.45, label="load generator (light)")]
        handles += [Patch(facecolor="white", edgecolor="black", hatch=colors.RUN_HATCHES[i % 6],
                          label=f"run {run}") for i, run in enumerate(runs) if len(runs) > 1]
        ax.legend(handles=handles, loc="upper left", frameon=False)
    ax.axhline(90, color="#D55E00", linewidth=1, linestyle="--")
    ax.annotate("90%: load generator saturated", (0.99, 90), xycoords=("axes fraction", "data"),
                ha="right", va="bottom", fontsize=9, color="#D55E00")
    ax.set_ylabel("CPU (% of one core)")
    ax.set_ylim(0, max(110, float(np.nanmax(frame[["server_cpu_pct", "client_cpu_pct"]])) * 1.15))
    ax.set_title("Server CPU next to load-generator CPU")
    if swept and len(runs) == 1:
        # Below the 90 % line, which must stay readable.
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.8), fontsize=8.5, ncols=2)
    return figure


# ---- raw samples (notebook) --------------------------------------------------------------


@_styled
def latency_over_time(samples: pd.DataFrame, max_subscribers: int = 8,
                      title: str = "Latency over time, per subscriber") -> Figure | None:
    """Each delivery as a dot at its receive time: stalls and GC pauses show as columns."""
    if samples is None or samples.empty:
        return None
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    for transport in colors.order_transports(samples["transport"].unique()):
        rows = samples[samples["transport"] == transport]
        keep = sorted(rows["subscriber"].unique())[:max_subscribers]
        rows = rows[rows["subscriber"].isin(keep)]
        st = colors.style(transport)
        ax.scatter(rows["recv_s"], rows["latency_ms"], s=10, color=st.color, marker=st.marker,
                   alpha=0.6, label=f"{st.label} ({len(keep)} subscribers)")
    _log_latency_axis(ax, "y")
    ax.set_xlabel("receive time since measurement start (s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=2)
    return figure


@_styled
def latency_histogram(samples: pd.DataFrame, bins: int = 60,
                      title: str = "Latency histogram") -> Figure | None:
    """Histogram on log-spaced bins, one outline per transport."""
    if samples is None or samples.empty:
        return None
    values = samples["latency_ms"].dropna()
    values = values[values > 0]
    if values.empty:
        return None
    edges = np.geomspace(values.min(), values.max() * 1.0001, bins)
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    for transport in colors.order_transports(samples["transport"].unique()):
        rows = samples.loc[samples["transport"] == transport, "latency_ms"].dropna()
        ax.hist(rows[rows > 0], bins=edges, histtype="step", linewidth=2,
                color=colors.color(transport), label=colors.label(transport))
    _log_latency_axis(ax)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("deliveries per bin")
    ax.set_title(title)
    ax.legend()
    return figure
