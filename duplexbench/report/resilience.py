"""The report's fault and soak sections: recovery per transport and fault, growth over time.

Shown only for runs that have them: a run with fault points (the ``fault``
column, scenarios/faults.toml) gets a table of recovery, loss, failed publishes
and the reconnect storm's CPU peak, plus a figure of deliveries per second
around the fault; a long run (a soak, or any measurement of 120 s or more)
gets the server's RSS and open files over time and, when it is long enough,
the verdict of :mod:`duplexbench.benchmarks.soak` with its stated bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import colors, plots

__all__ = ["ExtraSection", "LONG_RUN_S", "fault_figure", "sections", "soak_figure"]

#: A run this long (measurement seconds per point) gets the over-time section.
LONG_RUN_S = 120.0


@dataclass(frozen=True)
class ExtraSection:
    """A titled block: sentences, tables (columns, rows) and figures (name, title, caption, png)."""

    title: str
    paragraphs: tuple[str, ...]
    tables: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...]
    figures: tuple[tuple[str, str, str, bytes], ...] = ()


def _fmt(value, digits: str = ".2f") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else "–"
    return "–" if math.isnan(number) else format(number, digits)


def _fault_rows(summary: pd.DataFrame) -> pd.DataFrame:
    if "fault" not in summary.columns:
        return summary.iloc[0:0]
    return summary[summary["fault"].fillna("").astype(str) != ""]


def _fault_table(rows: pd.DataFrame):
    columns = ("transport", "fault", "recovery max (s)", "after server up (s)", "lost",
               "publishes failed", "reconnects", "resets", "server CPU peak (%)",
               "mean CPU (%)", "status")
    cells = tuple(
        (colors.label(str(r["transport"])), str(r["fault"]), _fmt(r.get("recovery_s_max")),
         _fmt(r.get("recovery_after_up_s_max")), _fmt(r.get("lost"), ".0f"),
         _fmt(r.get("publish_failed"), ".0f"), _fmt(r.get("reconnects"), ".0f"),
         _fmt(r.get("resets"), ".0f"),
         _fmt(r.get("server_cpu_peak_pct"), ".0f"), _fmt(r.get("server_cpu_pct"), ".0f"),
         str(r.get("status")))
        for _, r in rows.iterrows())
    return columns, cells


@plots._styled
def fault_figure(samples: pd.DataFrame, rows: pd.DataFrame, at_s: float) -> Figure | None:
    """Deliveries per second (all subscribers) over the measurement, one panel per fault."""
    if samples is None or not len(samples) or "recv_s" not in samples.columns:
        return None
    kinds = list(dict.fromkeys(rows["fault"].astype(str)))
    figure = Figure(figsize=(plots.FIGSIZE[0], 2.6 * len(kinds)))
    axes = figure.subplots(len(kinds), 1, sharex=True, squeeze=False)[:, 0]
    bin_s = 0.1
    for ax, kind in zip(axes, kinds):
        for _, row in rows[rows["fault"].astype(str) == kind].iterrows():
            mine = samples[(samples["point"] == row["point"]) & (samples["repeat"] == row["repeat"])]
            if not len(mine):
                continue
            t = mine["recv_s"].to_numpy(float)
            edges = np.arange(0.0, max(t.max(), at_s) + bin_s, bin_s)
            counts, _ = np.histogram(t, edges)
            style = colors.style(str(row["transport"]))
            ax.plot(edges[:-1], counts / bin_s, color=style.color, linestyle=style.linestyle,
                    label=style.label, linewidth=1.2)
        ax.axvline(at_s, color="black", linestyle=":", linewidth=1)
        ax.set_title(f"{kind} at {at_s:g} s", loc="left")
        ax.set_ylabel("deliveries/s")
        ax.set_ylim(bottom=0)
    axes[-1].set_xlabel("seconds into the measurement (receive time)")
    axes[0].legend(loc="lower right", ncols=4)
    figure.tight_layout()
    return figure


@plots._styled
def soak_figure(series: pd.DataFrame, judge_from_s: float | None = None) -> Figure | None:
    """Server RSS and open files over time, one line per transport; judging starts at the line."""
    if series is None or not len(series):
        return None
    figure = Figure(figsize=(plots.FIGSIZE[0], 6.0))
    rss_ax, fd_ax = figure.subplots(2, 1, sharex=True)
    for transport in colors.order_transports(series["transport"].unique()):
        part = series[series["transport"] == transport]
        style = colors.style(transport)
        for ax, column in ((rss_ax, "rss_mib"), (fd_ax, "open_files")):
            ax.plot(part["t_s"] / 60.0, part[column], color=style.color, marker=style.marker,
                    markersize=3, label=style.label, linewidth=1.2)
    low, high = float(series["rss_mib"].min()), float(series["rss_mib"].max())
    if high - low < 2.0:  # a flat line must look flat: at least 2 MiB of axis
        middle = (low + high) / 2
        rss_ax.set_ylim(middle - 1.0, middle + 1.0)
    if judge_from_s is not None and judge_from_s / 60.0 < float(series["t_s"].max()) / 60.0:
        for ax in (rss_ax, fd_ax):
            ax.axvline(judge_from_s / 60.0, color="black", linestyle=":", linewidth=1)
    rss_ax.set_ylabel("server RSS (MiB)")
    fd_ax.set_ylabel("server open files")
    fd_ax.set_xlabel("minutes into the measurement")
    rss_ax.legend(loc="upper left", ncols=2)
    figure.tight_layout()
    return figure


def _faults_section(run) -> ExtraSection | None:
    rows = _fault_rows(run.summary)
    if not len(rows):
        return None
    parsed = ((run.meta.get("scenario") or {}).get("parsed") or {}).get("faults") or {}
    at_s = float(parsed.get("at_s") or 0.0)
    down_s = float(parsed.get("down_s") or 0.0)
    recovered = rows[rows["status"].astype(str) != "unrecovered"]
    text = [
        f"Each point met one fault {at_s:g} s into its measurement (restarts: the old process "
        f"stopped, {down_s:g} s later a new one on the same port, with a new epoch; cut: the "
        "proxy closed every connection; kill-worker: one worker of a server with workers behind "
        "Redis SIGKILLed, the others answering meanwhile and the parent starting a new one: its "
        "clients must resume on another worker from their cursors, with no reset). Recovery = until every subscriber received a message "
        "published after the fault; it includes the downtime. Lost counts acknowledged "
        "messages never delivered (a SIGKILL may lose what was in flight; a SIGTERM restart "
        "flushes and must lose none). Publishes failed = POSTs refused while the server was down.",
        f"{len(recovered)} of {len(rows)} fault points recovered"
        + ("." if len(recovered) == len(rows) else
           ": the others have subscribers that never received again (status unrecovered)."),
    ]
    figures = []
    try:
        fig = fault_figure(run.samples(), rows, at_s)
    except Exception:  # a figure must not cost the section
        fig = None
    if fig is not None:
        figures.append(("faults_deliveries", "Deliveries per second around the fault",
                        "All subscribers' deliveries per 100 ms bin, by receive time; the dotted "
                        "line is the fault. The dip is the outage; its width is the recovery.",
                        plots.to_png(fig)))
    return ExtraSection(f"Faults{' (run ' + run.label + ')' if run.label else ''}",
                        tuple(text), (_fault_table(rows),), tuple(figures))


def _soak_section(run) -> ExtraSection | None:
    from ..benchmarks import soak

    summary = run.summary
    name = str((run.meta.get("scenario") or {}).get("name") or "")
    duration = pd.to_numeric(summary.get("duration_s"), errors="coerce").max() if len(summary) else 0
    if not (name.startswith("soak") or (duration == duration and duration >= LONG_RUN_S)):
        return None
    load = run.load()
    if load is None or not len(load):
        return None
    verdicts = soak.judge_run(run.meta, summary, load)
    text = [f"Server memory and open files over the measurement. Growth is judged from "
            f"{verdicts[0].judge_from_s:.0f} s on (1.5 x the time the retention rings take to "
            f"fill, + 10 s), against stated bounds: RSS slope <= "
            f"{soak.RSS_SLOPE_BOUND_MIB_MIN:g} MiB/min, open files at most "
            f"+{soak.FD_BOUND}, lost = late = 0, at least {soak.MIN_JUDGED_S:.0f} s judged."
            if verdicts else "No measured points to judge."]
    columns = ("transport", "verdict", "RSS at judging start (MiB)", "RSS at end (MiB)",
               "RSS slope (MiB/min)", "open files start → end", "lost", "late", "why")
    cells = tuple((colors.label(v.transport), v.verdict, _fmt(v.rss_start_mib, ".1f"),
                   _fmt(v.rss_end_mib, ".1f"), _fmt(v.rss_slope_mib_min, "+.2f"),
                   f"{_fmt(v.open_files_start, '.0f')} → {_fmt(v.open_files_end, '.0f')}",
                   _fmt(v.lost, ".0f"), _fmt(v.late, ".0f"), v.reasons or "")
                  for v in verdicts)
    figures = []
    fig = soak_figure(soak.timeseries(load), verdicts[0].judge_from_s if verdicts else None)
    if fig is not None:
        figures.append(("soak_rss_open_files", "Server RSS and open files over time",
                        "Highest RSS and open files per 10 s of the measurement, per transport "
                        "(one server process each); growth is judged right of the dotted line, "
                        "once the retention rings are full. A line that keeps rising there is a "
                        "leak.", plots.to_png(fig)))
    return ExtraSection(f"Soak{' (run ' + run.label + ')' if run.label else ''}", tuple(text),
                        ((columns, cells),), tuple(figures))


def sections(runs) -> list[ExtraSection]:
    """The fault and soak sections of every run that has them (single runs get no label)."""
    out: list[ExtraSection] = []
    for run in runs:
        for build in (_faults_section, _soak_section):
            section = build(run)
            if section is not None:
                if len(runs) == 1:
                    section = ExtraSection(section.title.split(" (run ")[0], section.paragraphs,
                                           section.tables, section.figures)
                out.append(section)
    return out
