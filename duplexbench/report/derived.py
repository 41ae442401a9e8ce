"""Per-message costs and the load point that transports are compared at.

Plots, findings and tables must agree on what "server CPU per message" means and
on which load point a sentence talks about; both are defined once, here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import topology
from .colors import order_transports

__all__ = [
    "AXES",
    "AXIS_LABELS",
    "derive",
    "combine",
    "aggregate",
    "swept_axes",
    "ReferencePoint",
    "reference_point",
    "describe_point",
    "at_point",
    "first_pattern",
]

#: The load-point axes a scenario sweeps (transport aside), in order of importance.
AXES = ("clients", "rate_msgs_s", "payload_bytes", "delay_ms")
AXIS_LABELS = {
    "clients": "subscribers",
    "rate_msgs_s": "publish rate (messages/s)",
    "payload_bytes": "payload (bytes)",
    "delay_ms": "one-way network delay (ms)",
}


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Division that gives NaN, not inf, when nothing was delivered."""
    denominator = denominator.where(denominator > 0)
    return numerator / denominator


def _rss_per_connection(frame: pd.DataFrame) -> pd.DataFrame:
    """Server memory per open connection, in KiB, and its standard error, from a sweep
    of subscribers only.

    Peak RSS ÷ connections is mostly the server's baseline (40 MiB over 10
    connections is "4 MiB per connection"), so the figure is the slope of peak
    RSS (MiB) against connections where a transport ran at two or more
    connection counts: the memory each added connection costs. Without such a
    sweep it is NaN (not measured), never the plain ratio.

    Peak RSS moves between runs by a few hundred KiB (allocator arenas, the
    interpreter's own caches), as much as 40 connections may cost, so the slope
    comes with its standard error: the residual scatter about each transport's
    line, pooled over the run's transports (the same server, the same allocator:
    the scatter is the same kind of noise, and one line of three points alone
    has a single degree of freedom), over that transport's spread of connection
    counts. Two counts leave no residual: the error is then unknown (NaN) and no
    ratio is stated (report/intervals.py).
    """
    slope = pd.Series(np.nan, index=frame.index, dtype=float)
    error = pd.Series(np.nan, index=frame.index, dtype=float)
    # One slope per server shape: two workers' RSS is not one process's plus connections.
    shape = topology.tidy(frame)
    runs = frame.groupby("run", sort=False) if "run" in frame.columns else [("", frame)]
    for _, run in runs:
        fits, squares, dof = [], 0.0, 0
        groups = [run["transport"], shape.loc[run.index, "workers"], shape.loc[run.index, "broker"]]
        for _, rows in run.groupby(groups, sort=False):
            rows = rows[rows["server_connections_max"].notna() & rows["server_rss_mib_max"].notna()]
            if rows["server_connections_max"].nunique() < 2:
                continue
            x = rows["server_connections_max"].to_numpy(dtype=float)
            y = rows["server_rss_mib_max"].to_numpy(dtype=float) * 1024
            line = np.polyfit(x, y, 1)
            squares += float(((y - np.polyval(line, x)) ** 2).sum())
            dof += x.size - 2
            fits.append((rows.index, float(line[0]), float(((x - x.mean()) ** 2).sum())))
        scatter = math.sqrt(squares / dof) if dof > 0 else math.nan
        for index, value, sxx in fits:
            slope.loc[index] = max(value, 0.0)
            error.loc[index] = scatter / math.sqrt(sxx)
    return pd.DataFrame({"server_rss_kib_per_conn": slope, "server_rss_kib_per_conn_se": error})


def derive(summary: pd.DataFrame) -> pd.DataFrame:
    """Add the per-message / per-connection costs the report plots."""
    frame = summary.copy()
    frame["server_cpu_s_per_1k"] = _ratio(frame["server_cpu_s"], frame["delivered"]) * 1000
    frame["client_cpu_s_per_1k"] = _ratio(frame["client_cpu_s"], frame["delivered"]) * 1000
    memory = _rss_per_connection(frame)
    frame["server_rss_kib_per_conn"] = memory["server_rss_kib_per_conn"]
    frame["server_rss_kib_per_conn_se"] = memory["server_rss_kib_per_conn_se"]
    frame["bytes_per_msg"] = frame["bytes_down_per_msg"] + frame["bytes_up_per_msg"].fillna(0)
    # As the kernel counted them (TCP_INFO), headers and pure ACKs included; NaN without.
    frame["ip_bytes_per_msg"] = frame["ip_bytes_down_per_msg"] + frame["ip_bytes_up_per_msg"]
    frame["overhead_per_msg"] = frame["overhead_down_per_msg"] + frame["overhead_up_per_msg"].fillna(0)
    return frame


def combine(runs) -> pd.DataFrame:
    """One derived frame for several runs, with a `run` column holding each run's label."""
    frames = []
    for run in runs:
        frame = derive(run.summary)
        frame.insert(0, "run", run.label)
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _keepalive_on(value: str) -> bool:
    return str(value).strip().lower() not in ("false", "0", "no", "off")


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, transport, load point): the median over repeats.

    A long-polling keep-alive sweep would put two rows on one point; the report's
    comparisons use keep-alive on (the default) and leave "off" to its own figure.
    """
    if frame.empty:
        return frame
    frame = frame.copy()
    if "run" not in frame.columns:
        frame["run"] = ""
    on = frame["keepalive"].map(_keepalive_on)
    has_on = on.groupby([frame["run"], frame["transport"]]).transform("any")
    frame = frame[on | ~has_on]
    if "tls" in frame.columns:  # a TLS sweep: compare transports without TLS (serverinfo.py has the cost)
        off = ~frame["tls"].map(_keepalive_on)
        has_off = off.groupby([frame["run"], frame["transport"]]).transform("any")
        frame = frame[off | ~has_off]
    from .infra import main_rows  # direct, native rows (proxy/browser apart)

    frame = main_rows(frame)
    frame = first_pattern(frame)
    keys = ["run", "transport", *AXES]
    numeric = frame.select_dtypes("number").columns.difference(keys)
    # groupby drops NaN keys by default: an axis the run does not record must still group.
    grouped = frame.groupby(keys, dropna=False, sort=False)
    out = grouped[list(numeric)].median().reset_index()
    out["repeats"] = grouped.size().to_numpy()
    text = grouped[["status", "warnings"]].agg(lambda s: "; ".join(sorted({x for x in s if x})))
    out = out.merge(text.reset_index(), on=keys, how="left")
    if "validity" in frame.columns:  # a point is as valid as its worst repeat
        worst = grouped["validity"].agg(_worst_validity).reset_index()
        out = out.merge(worst, on=keys, how="left")
    return out


def first_pattern(frame: pd.DataFrame) -> pd.DataFrame:
    """A pattern sweep (``pattern = ["fanout", "echo"]``): the rows of the first pattern each
    run ran, the one transports are compared at (scenario ``pattern``); a fan-out and an echo
    at the same load are different workloads, never one point's repeats. report/floor.py
    reads every pattern itself."""
    if "pattern" not in frame.columns or frame["pattern"].dropna().nunique() <= 1:
        return frame
    first = frame.groupby("run", sort=False)["pattern"].transform(
        lambda s: s.dropna().iloc[0] if s.notna().any() else "")
    return frame[frame["pattern"].fillna("") == first.fillna("")]


def _worst_validity(values: pd.Series) -> str:
    from ..measure.validity import SEVERITY

    ranked = [v for v in values if v in SEVERITY]
    return min(ranked, key=SEVERITY.index) if ranked else ""


def swept_axes(frame: pd.DataFrame) -> list[str]:
    """Axes with more than one value in the (single or combined) frame."""
    return [axis for axis in AXES if frame[axis].dropna().nunique() > 1]


@dataclass(frozen=True)
class ReferencePoint:
    """The load point transports are compared at, and which transports reached it."""

    values: dict  # axis -> value (NaN when the run does not record that axis)
    transports: tuple[str, ...]  # with a result at this point
    missing: tuple[str, ...]  # present in the run but without a result here

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        mask = pd.Series(True, index=frame.index)
        for axis, value in self.values.items():
            if pd.isna(value):
                mask &= frame[axis].isna()
            else:
                mask &= np.isclose(frame[axis].astype(float), float(value))
        return mask


def reference_point(agg: pd.DataFrame, metric: str | None = None) -> ReferencePoint | None:
    """The largest load point that the most transports reached (with `metric` measured).

    "Largest" orders by subscribers, then rate, payload and delay: the point where
    costs differ most, and the one a reader asks about ("at 1,000 subscribers").
    """
    frame = agg if metric is None else agg[agg[metric].notna()]
    if frame.empty:
        return None
    keyed = frame.assign(**{a: frame[a].astype(float) for a in AXES})
    counts = keyed.groupby(list(AXES), dropna=False)["transport"].nunique().reset_index()
    counts = counts.sort_values(["transport", *AXES], ascending=False, na_position="last")
    best = counts.iloc[0]
    values = {axis: best[axis] for axis in AXES}
    point = ReferencePoint(values, (), ())
    here = frame[point.mask(frame)]
    transports = tuple(order_transports(here["transport"].unique()))
    missing = tuple(t for t in order_transports(agg["transport"].unique()) if t not in transports)
    return ReferencePoint(values, transports, missing)


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def describe_point(point: ReferencePoint, swept: list[str]) -> str:
    """"at 1,000 subscribers, 200 messages/s": subscribers always, other axes when swept."""
    parts = []
    clients = point.values.get("clients")
    if clients is not None and not pd.isna(clients):
        parts.append(f"{_num(clients)} subscriber{'s' if clients != 1 else ''}")
    for axis, text in (
        ("rate_msgs_s", "{} messages/s"),
        ("payload_bytes", "{}-byte payloads"),
        ("delay_ms", "{} ms one-way delay"),
    ):
        value = point.values.get(axis)
        if axis in swept and value is not None and not pd.isna(value):
            parts.append(text.format(_num(value)))
    return "at " + ", ".join(parts) if parts else "at the only load point"


def at_point(agg: pd.DataFrame, point: ReferencePoint) -> pd.DataFrame:
    return agg[point.mask(agg)]
