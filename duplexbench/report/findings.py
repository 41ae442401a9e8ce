"""Sentences computed from a run's numbers, and the warnings a reader must not miss.

A report is read from its sentences; each one here is a pure function of the
summary, so a sentence can be tested against the fixture values it was made from.
Per metric the cheapest and the most expensive transport are compared at the
largest load point they share **where every compared row can carry a comparison**
(validity ``ok`` or ``server-saturated``, duplexbench/measure/validity.py); where the
largest point cannot, a sentence says why ("at 50 subscribers the load generator
was saturated for WebSocket: no server comparison at this point").

Confidence: every figure carries its rerun interval (report/intervals.py: where
another run of this build would measure it, 99 times in 100: this run's own
sampling by a block bootstrap over published messages, report/noise.py, plus
what differs between runs, measured by `reproduce`, report/calibration.py; with
repeats, their spread). A comparison whose ratio interval reaches 1 is a tie,
not a finding; differences within 5 % are always a tie. A finding states its
ratio's interval ("4.7×; a rerun: 4.1–5.4×").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..measure.validity import COMPARABLE, SATURATED_PCT, comparable, near_saturation
from . import colors, headers
from .alerts import Warning_, run_warnings
from .derived import (
    AXES,
    ReferencePoint,
    aggregate,
    at_point,
    combine,
    describe_point,
    reference_point,
    swept_axes,
)
from .confidence import (
    interval_text,
    memory_text,
    repeat_spread,
    spreads_at,
    tie_reason,
    usable,
)
from .finding import FigureValue, Finding
from .intervals import ratio_interval
from .wording import TIE_TOLERANCE, format_ratio, number, transport_name
from .load import ReportRun, is_complete
from .noise import analysed_frame

__all__ = [
    "TIE_TOLERANCE",
    "Metric",
    "METRICS",
    "Warning_",
    "format_ratio",
    "number",
    "transport_findings",
    "validity_notices",
    "run_findings",
    "compare_runs",
    "run_warnings",  # report/alerts.py; kept here for the callers that import it from here
]



@dataclass(frozen=True)
class Metric:
    """A lower-is-better quantity and the words for it."""

    column: str
    name: str  # "server CPU per delivered message"
    less: str  # "{best} used {ratio} less server CPU per delivered message than {worst}"
    none: str  # sentence when the cheapest transport needs none of it
    unit: str  # unit of the values quoted in parentheses


METRICS: tuple[Metric, ...] = (
    Metric("server_cpu_s_per_1k", "server CPU per delivered message",
           "{best} used {ratio} less server CPU per delivered message than {worst}",
           "{best} used no measurable server CPU", "s of CPU per 1,000 messages"),
    Metric("lat_p99_ms", "p99 latency", "{best} had {ratio} lower p99 latency than {worst}",
           "{best} had zero p99 latency", "ms"),
    Metric("lat_p50_ms", "median latency",
           "{best} had {ratio} lower median latency than {worst}",
           "{best} had zero median latency", "ms"),
    Metric("bytes_per_msg", "bytes on the wire per delivered message",
           "{best} moved {ratio} fewer bytes per delivered message than {worst}",
           "{best} moved no bytes", "bytes"),
    Metric(headers.COLUMN, headers.NAME,
           "{best} made {ratio} fewer HTTP requests per delivered message than {worst}",
           "{best} made no HTTP requests per delivered message after connecting",
           "requests per message"),
    Metric("server_rss_kib_per_conn", "server memory per open connection",
           "{best} used {ratio} less server memory per open connection than {worst}",
           "{best} used no server memory per connection", "KiB"),
    Metric("client_cpu_s_per_1k", "load-generator CPU per delivered message",
           "{best} needed {ratio} less load-generator CPU per delivered message than {worst}",
           "{best} needed no load-generator CPU", "s of CPU per 1,000 messages"),
)


def _values_text(metric: Metric, rows: list[tuple[str, float]]) -> str:
    return ", ".join(f"{transport_name(t)} {number(v)}" for t, v in rows)


#: Why a validity keeps a point out of comparisons, in words.
_WHY = {
    "failed": "the point failed",
    "empty": "no message was measured",
    "lost": "messages were lost",
    "loadgen-saturated": "the load generator was saturated",
    "both-saturated": "the load generator and the server were both saturated",
    "late": "deliveries arrived after the drain bound",
    "few-samples": "there were too few latency samples",
}


def validity_notices(agg: pd.DataFrame) -> list[Finding]:
    """Sentences for the largest load point where some rows cannot be compared."""
    if "validity" not in agg.columns or agg.empty:
        return []
    point = reference_point(agg)
    if point is None:
        return []
    rows = at_point(agg, point)
    bad = rows[~rows["validity"].map(lambda v: comparable(v) or not v or v != v)]
    if bad.empty:
        return []
    by_reason: dict[str, list[str]] = {}
    for _, row in bad.iterrows():
        by_reason.setdefault(_WHY.get(row["validity"], row["validity"]), []).append(
            transport_name(row["transport"]))
    where = describe_point(point, swept_axes(agg))
    reasons = ", ".join(f"{why} for {' and '.join(names)}" for why, names in by_reason.items())
    return [Finding(f"{where[0].upper()}{where[1:]} {reasons}: no server comparison at this "
                    "point.", kind="not-comparable")]


def _reading(metric: Metric, value: float) -> str:
    """What a figure below 1 HTTP request per message means (report/headers.py), else ''."""
    return headers.batching_note(value) if metric.column == headers.COLUMN else ""


def _near_saturation_text(rows: pd.DataFrame, transports: list[str]) -> str:
    """What a compared side's own load did to its figures, as a suffix of the sentence:
    ' (saturated: long polling's server at 92 %, ...)' for a server above 90 % of its core,
    ' (near saturation: NDJSON's server at 85 %, > 80 %)' for a server or load generator
    above 80 %, else ''.

    Both sides stay comparable (validity ``ok`` or ``server-saturated``), but a saturated
    server's latency is mostly its own queue, which grows with the offered load and the
    run's length, and near saturation that queueing starts to show
    (duplexbench/measure/validity.py), so the sentence must say so.
    """
    saturated, near = [], []
    for transport in transports:
        for _, row in rows[rows["transport"] == transport].iterrows():
            server = pd.to_numeric(row.get("server_cpu_pct"), errors="coerce")
            if server > SATURATED_PCT:
                saturated.append(f"{transport_name(transport)}'s server at {server:.0f} %")
            for note in near_saturation(row):
                # "near saturation (server at 85 %, > 80 %)" -> "NDJSON's server at 85 %, > 80 %"
                near.append(f"{transport_name(transport)}'s {note[len('near saturation ('):-1]}")
    text = ""
    if saturated:
        text += (f" (saturated: {'; '.join(saturated)}: its figures include its own queueing "
                 "and hold for this load only)")
    if near:
        text += f" (near saturation: {'; '.join(near)})"
    return text


def transport_findings(agg: pd.DataFrame, metrics=METRICS,
                       frame: pd.DataFrame | None = None) -> list[Finding]:
    """Cheapest vs most expensive transport per metric, for one run's aggregated rows.

    ``frame``: the same run's rows before aggregation (repeats), for spreads.
    Only rows whose validity is comparable are compared.
    """
    findings: list[Finding] = []
    if agg.empty:
        return [Finding("No load point finished: nothing to compare.", kind="note")]
    swept = swept_axes(agg)
    transports = colors.order_transports(agg["transport"].unique())
    if len(transports) == 1:
        point = reference_point(agg)
        only = transports[0]
        row = at_point(agg, point).iloc[0]
        parts = [f"{m.name} {number(row[m.column])} {m.unit}" for m in metrics
                 if not pd.isna(row[m.column])]
        findings.append(Finding(
            f"Only {transport_name(only)} was measured, so transports cannot be compared; "
            f"{describe_point(point, swept)} it showed " + "; ".join(parts) + ".",
            best=only, worst=only, kind="single"))
        return findings
    findings += validity_notices(agg)
    rows_ok = usable(agg)
    if rows_ok.empty or reference_point(rows_ok) is None or \
            reference_point(rows_ok).transports and len(reference_point(rows_ok).transports) < 2:
        findings.append(Finding(
            "No load point where at least two transports' figures describe the server "
            f"(validity {' or '.join(sorted(COMPARABLE))}): no transport comparison in this run.",
            kind="not-comparable"))
        return findings
    for metric in metrics:
        point = reference_point(rows_ok, metric.column)
        if point is None:
            continue  # nobody measured it: say nothing rather than something vague
        where = describe_point(point, swept)
        rows = at_point(rows_ok, point)
        rows = rows[rows[metric.column].notna()]
        values = sorted(((t, float(v)) for t, v in zip(rows["transport"], rows[metric.column])),
                        key=lambda tv: (tv[1], colors.order_transports(transports).index(tv[0])
                                        if tv[0] in transports else 99))
        missing = [t for t in transports if t not in dict(values)]
        note = (f" (no comparable {metric.name} for {', '.join(transport_name(t) for t in missing)} "
                "there)" if missing else "")
        if len(values) == 1:
            (only, v), = values
            findings.append(Finding(
                f"Only {transport_name(only)} has a comparable {metric.name} {where} ({number(v)} "
                f"{metric.unit}): no comparison{note}.", metric.column, only, only, kind="single"))
            continue
        (best, low), (worst, high) = values[0], values[-1]
        if high <= 0:
            findings.append(Finding(
                f"{metric.name[0].upper() + metric.name[1:]} {where} was zero for every "
                f"transport: no clear difference{note}.", metric.column, best, worst, 1.0, "tie"))
            continue
        ratio = math.inf if low <= 0 else high / low
        spreads = spreads_at(frame, rows, point, metric.column, values)
        lo, hi = (math.inf, math.inf) if math.isinf(ratio) else \
            ratio_interval(spreads[best], spreads[worst])
        known = not any(math.isnan(s.var) for s in (spreads[best], spreads[worst])) or \
            metric.column == "server_rss_kib_per_conn"
        repeats = max(spreads[best].repeats, spreads[worst].repeats)
        shape = dict(point=tuple((a, float(point.values[a])) for a in AXES), repeats=repeats,
                     values=tuple(FigureValue(t, v, *spreads[t].interval()) for t, v in values))
        spread = repeat_spread(frame, point, metric.column, best, worst)
        tie_why, hint = tie_reason(metric.column, ratio, lo, spreads[best], spreads[worst], known,
                                    spread)
        shown_values = (memory_text(rows, values) if metric.column == "server_rss_kib_per_conn"
                        else f"{_values_text(metric, values)} {metric.unit}")
        if tie_why:
            near = _near_saturation_text(rows, [t for t, _ in values])
            reach = interval_text(lo, hi, repeats, f"{transport_name(worst)} / {transport_name(best)}")
            head = f"{metric.name[0].upper() + metric.name[1:]} {where}"
            text = (f"{head}: no ratio: {shown_values}; a slope is compared only once it is "
                    f"clear of its standard error{note}." if tie_why.startswith("no ratio")
                    else f"{head}: {tie_why} across {len(values)} transports ({shown_values}"
                         f"{reach}): no clear difference{note}{near}.{hint}")
            findings.append(Finding(text, metric.column, best, worst, ratio, "tie", lo=lo,
                                    hi=hi, **shape))
            continue
        near = _near_saturation_text(rows, [best, worst])
        if math.isinf(ratio):
            text = (f"{where[0].upper()}{where[1:]}, " + metric.none.format(best=transport_name(best)) +
                    ", against "
                    f"{number(high)} {metric.unit}{_reading(metric, high)} for {transport_name(worst)}"
                    f"{note}{near}.")
        else:
            figures = (memory_text(rows, [(best, low), (worst, high)])
                       if metric.column == "server_rss_kib_per_conn" else
                       f"{number(low)} vs {number(high)} {metric.unit}{_reading(metric, high)}")
            text = (metric.less.format(best=transport_name(best, True), ratio=format_ratio(ratio),
                                       worst=transport_name(worst)) +
                    f" {where} ({figures}{interval_text(lo, hi, repeats, spread=spread)})"
                    f"{note}{near}.")
        findings.append(Finding(text, metric.column, best, worst, ratio, lo=lo, hi=hi, **shape))
    return findings


def _missing_transports(run: ReportRun) -> list[str]:
    parsed = (run.meta.get("scenario") or {}).get("parsed") or {}
    planned = parsed.get("transports") or []
    present = set(run.summary["transport"])
    return [t for t in planned if t not in present]


def run_findings(run: ReportRun, frame: pd.DataFrame | None = None) -> list[Finding]:
    """Findings for one run, starting with what the comparison cannot cover.

    ``frame``: the run's rows with their measured noise (noise.analysed_frame),
    when the caller already has them (the report also writes findings.json).
    """
    findings = []
    missing = _missing_transports(run)
    if missing:
        findings.append(Finding(
            f"No results for {', '.join(transport_name(t) for t in missing)}, although the scenario "
            f"lists {'them' if len(missing) > 1 else 'it'}: "
            f"{'the run ended early' if not is_complete(run.meta) else 'every point failed'}.",
            kind="note"))
    frame = analysed_frame(run) if frame is None else frame
    frame, dropped = _drop_bad_repeats(frame)
    if dropped:
        findings.append(Finding(
            f"Left out of the comparisons: {dropped} (the other repeats of those points "
            "are used).", kind="note"))
    from .infra import left_aside, main_rows  # the spreads' rows are the aggregate's

    aside = left_aside(frame)
    if aside:
        findings.append(Finding(
            f"The comparisons below leave out {aside}: another measurement of a point is "
            "never pooled with it as a repeat.", kind="note"))
    frame = main_rows(frame)
    agg = aggregate(frame)
    return findings + transport_findings(agg, frame=frame)


def _drop_bad_repeats(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Repeats that cannot be compared, dropped where their point has a comparable repeat.

    A point whose every repeat is bad keeps them: it is then named as not comparable.
    """
    if frame.empty or "validity" not in frame.columns or frame["repeat"].nunique() < 2:
        return frame, ""
    keys = ["transport", *AXES]
    good = frame["validity"].map(comparable)
    has_good = good.groupby([frame[k].astype(str) for k in keys]).transform("any")
    drop = ~good & has_good
    if not drop.any():
        return frame, ""
    named = "; ".join(
        f"{transport_name(row['transport'])} at {row['clients']:,.0f} subscribers, repeat "
        f"{int(row['repeat']) + 1} ({row['validity']})" for _, row in frame[drop].iterrows())
    return frame[~drop], named


#: Metrics compared between runs (run B vs run A): the ones a change is judged by.
RUN_METRICS = ("lat_p99_ms", "server_cpu_s_per_1k", "bytes_per_msg")


def compare_runs(base: ReportRun, other: ReportRun, metrics=RUN_METRICS) -> list[Finding]:
    """"Run B vs run A" per transport, at the largest load point both runs reached."""
    agg = aggregate(combine([base, other]))
    findings = []
    by_column = {m.column: m for m in METRICS}
    for transport in colors.order_transports(agg["transport"].unique()):
        rows = agg[agg["transport"] == transport]
        a, b = rows[rows["run"] == base.label], rows[rows["run"] == other.label]
        keys = ["clients", "rate_msgs_s", "payload_bytes", "delay_ms"]
        common = a[keys].merge(b[keys]).drop_duplicates()
        if common.empty:
            findings.append(Finding(
                f"{transport_name(transport, True)}: no load point in both run {base.label} and run "
                f"{other.label}; not compared.", best=transport, kind="note"))
            continue
        largest = common.fillna(-1).sort_values(keys, ascending=False).iloc[0]
        point = ReferencePoint({k: (math.nan if largest[k] == -1 else largest[k]) for k in keys},
                               (transport,), ())
        where = describe_point(point, swept_axes(agg))
        va, vb = at_point(a, point).iloc[0], at_point(b, point).iloc[0]
        bad = [f"run {label}: {row.get('validity')}" for label, row in
               ((base.label, va), (other.label, vb))
               if "validity" in row and row.get("validity") and not comparable(row.get("validity"))]
        if bad:
            findings.append(Finding(
                f"Run {other.label} vs run {base.label}, {transport_name(transport)} {where}: not compared "
                f"({'; '.join(bad)}): the figures there do not describe the server.",
                best=transport, kind="not-comparable"))
            continue
        parts = []
        for column in metrics:
            metric, x, y = by_column[column], va[column], vb[column]
            if pd.isna(x) or pd.isna(y):
                parts.append(f"{metric.name} not measured in both")
            elif x > 0 and y > 0 and max(x, y) / min(x, y) <= 1 + TIE_TOLERANCE:
                parts.append(f"{metric.name} within 5% (no clear difference)")
            elif x <= 0 or y <= 0:
                parts.append(f"{metric.name} {number(y)} vs {number(x)}")
            else:
                ratio, word = (y / x, "higher") if y > x else (x / y, "lower")
                parts.append(f"{metric.name} {format_ratio(ratio)} {word} "
                             f"({number(y)} vs {number(x)} {metric.unit})")
        findings.append(Finding(
            f"Run {other.label} vs run {base.label}, {transport_name(transport)} {where}: "
            + "; ".join(parts) + ".", best=transport, kind="run-vs-run"))
    return findings
