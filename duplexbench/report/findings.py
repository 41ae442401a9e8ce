"""Sentences computed from a run's numbers, and the warnings a reader must not miss.

A report is read from its sentences; each one here is a pure function of the
summary, so a sentence can be tested against the fixture values it was made from.
Per metric the cheapest and the most expensive transport are compared at the
largest load point they share **where every compared row can carry a comparison**
(validity ``ok`` or ``server-saturated``, duplexbench/measure/validity.py); where the
largest point cannot, a sentence says why ("at 50 subscribers the load generator
was saturated for WebSocket: no server comparison at this point").

Confidence: with repeats, every ratio carries its spread over the repeats
("2.3× (2.1–2.5×, 3 repeats)") and repeats that disagree on the order make a
tie. With one repeat, a ratio inside the run's measured noise (report/noise.py:
order-statistic intervals of percentiles, block standard errors of CPU) is a
tie; differences within 5 % are always a tie (the floor: repeated runs on one
machine move by about that much).
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
from .finding import Finding
from .load import ReportRun, is_complete

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

#: Ratios within this of 1 are reported as "no clear difference".
TIE_TOLERANCE = 0.05


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


def number(value: float) -> str:
    """Three significant digits without exponents: 0.0118, 4.35, 17.6, 411, 2,370."""
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 0.001 or value == 0 else f"{value:.2e}"


def format_ratio(ratio: float) -> str:
    """3.1× — one decimal below 100, none above (precision the data does not have)."""
    return f"{ratio:,.1f}×" if ratio < 100 else f"{ratio:,.0f}×"


def _name(transport: str, capital: bool = False) -> str:
    text = colors.label(transport)
    return text[0].upper() + text[1:] if capital else text


def _values_text(metric: Metric, rows: list[tuple[str, float]]) -> str:
    return ", ".join(f"{_name(t)} {number(v)}" for t, v in rows)


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


def _usable(agg: pd.DataFrame) -> pd.DataFrame:
    if "validity" not in agg.columns:
        return agg
    return agg[agg["validity"].map(lambda v: comparable(v) or v in ("", None)
                                   or (isinstance(v, float) and math.isnan(v)))]


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
            _name(row["transport"]))
    where = describe_point(point, swept_axes(agg))
    reasons = ", ".join(f"{why} for {' and '.join(names)}" for why, names in by_reason.items())
    return [Finding(f"{where[0].upper()}{where[1:]} {reasons}: no server comparison at this "
                    "point.", kind="not-comparable")]


def _spread(frame: pd.DataFrame | None, point, metric: str, best: str,
            worst: str) -> tuple[float, float, int] | None:
    """(min, max, n) of the per-repeat ratios worst/best, repeats paired by number."""
    if frame is None or frame.empty or "repeat" not in frame.columns:
        return None
    rows = frame[point.mask(frame)] if len(frame) else frame
    if "validity" in rows.columns:
        rows = _usable(rows)
    a = rows[rows["transport"] == best].set_index("repeat")[metric].dropna()
    b = rows[rows["transport"] == worst].set_index("repeat")[metric].dropna()
    common = a.index.intersection(b.index)
    if len(common) < 2:
        return None
    ratios = [float(b[r]) / float(a[r]) for r in common if float(a[r]) > 0]
    if len(ratios) < 2:
        return None
    return min(ratios), max(ratios), len(ratios)


def _noise_tie(rows: pd.DataFrame, metric: str, best: str, worst: str, ratio: float) -> str:
    """A reason when a one-repeat ratio lies inside the measured noise, else ''."""
    column = f"noise_{metric}"
    if column not in rows.columns:
        return ""
    noise = rows.set_index("transport")[column]
    nb, nw = noise.get(best), noise.get(worst)
    if nb is None or nw is None or pd.isna(nb) or pd.isna(nw):
        return ""
    # Best could be up to (1+nb) higher and worst (1+nw) lower: the ratio could be 1.
    if ratio <= (1 + nb) * (1 + nw):
        return (f"inside this run's measured noise (±{100 * nb:.0f}% and ±{100 * nw:.0f}%, "
                "one repeat)")
    return ""


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
                saturated.append(f"{_name(transport)}'s server at {server:.0f} %")
            for note in near_saturation(row):
                # "near saturation (server at 85 %, > 80 %)" -> "NDJSON's server at 85 %, > 80 %"
                near.append(f"{_name(transport)}'s {note[len('near saturation ('):-1]}")
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
            f"Only {_name(only)} was measured, so transports cannot be compared; "
            f"{describe_point(point, swept)} it showed " + "; ".join(parts) + ".",
            best=only, worst=only, kind="single"))
        return findings
    findings += validity_notices(agg)
    usable = _usable(agg)
    if usable.empty or reference_point(usable) is None or \
            reference_point(usable).transports and len(reference_point(usable).transports) < 2:
        findings.append(Finding(
            "No load point where at least two transports' figures describe the server "
            f"(validity {' or '.join(sorted(COMPARABLE))}): no transport comparison in this run.",
            kind="not-comparable"))
        return findings
    for metric in metrics:
        point = reference_point(usable, metric.column)
        if point is None:
            continue  # nobody measured it: say nothing rather than something vague
        where = describe_point(point, swept)
        rows = at_point(usable, point)
        rows = rows[rows[metric.column].notna()]
        values = sorted(((t, float(v)) for t, v in zip(rows["transport"], rows[metric.column])),
                        key=lambda tv: (tv[1], colors.order_transports(transports).index(tv[0])
                                        if tv[0] in transports else 99))
        missing = [t for t in transports if t not in dict(values)]
        note = (f" (no comparable {metric.name} for {', '.join(_name(t) for t in missing)} "
                "there)" if missing else "")
        if len(values) == 1:
            (only, v), = values
            findings.append(Finding(
                f"Only {_name(only)} has a comparable {metric.name} {where} ({number(v)} "
                f"{metric.unit}): no comparison{note}.", metric.column, only, only, kind="single"))
            continue
        (best, low), (worst, high) = values[0], values[-1]
        if high <= 0:
            findings.append(Finding(
                f"{metric.name[0].upper() + metric.name[1:]} {where} was zero for every "
                f"transport: no clear difference{note}.", metric.column, best, worst, 1.0, "tie"))
            continue
        ratio = math.inf if low <= 0 else high / low
        spread = _spread(frame, point, metric.column, best, worst)
        tie_why = ""
        if ratio <= 1 + TIE_TOLERANCE:
            tie_why = "within 5%"
        elif spread is not None and spread[0] <= 1:
            tie_why = (f"the repeats disagree ({spread[0]:.2f}–{spread[1]:.2f}×, "
                       f"{spread[2]} repeats)")
        elif spread is None and not math.isinf(ratio):
            tie_why = _noise_tie(rows, metric.column, best, worst, ratio)
        if tie_why:
            near = _near_saturation_text(rows, [t for t, _ in values])
            findings.append(Finding(
                f"{metric.name[0].upper() + metric.name[1:]} {where}: {tie_why} across "
                f"{len(values)} transports ({_values_text(metric, values)} {metric.unit}): "
                f"no clear difference{note}{near}.", metric.column, best, worst, ratio, "tie"))
            continue
        near = _near_saturation_text(rows, [best, worst])
        if math.isinf(ratio):
            text = (f"{where[0].upper()}{where[1:]}, " + metric.none.format(best=_name(best)) +
                    ", against "
                    f"{number(high)} {metric.unit}{_reading(metric, high)} for {_name(worst)}"
                    f"{note}{near}.")
        else:
            shown = format_ratio(ratio)
            if spread is not None:
                shown += (f" ({spread[0]:.1f}–{spread[1]:.1f}×, {spread[2]} repeats)")
            text = (metric.less.format(best=_name(best, True), ratio=shown,
                                       worst=_name(worst)) +
                    f" {where} ({number(low)} vs {number(high)} "
                    f"{metric.unit}{_reading(metric, high)}){note}{near}.")
        findings.append(Finding(text, metric.column, best, worst, ratio))
    return findings


def _missing_transports(run: ReportRun) -> list[str]:
    parsed = (run.meta.get("scenario") or {}).get("parsed") or {}
    planned = parsed.get("transports") or []
    present = set(run.summary["transport"])
    return [t for t in planned if t not in present]


def run_findings(run: ReportRun) -> list[Finding]:
    """Findings for one run, starting with what the comparison cannot cover."""
    findings = []
    missing = _missing_transports(run)
    if missing:
        findings.append(Finding(
            f"No results for {', '.join(_name(t) for t in missing)}, although the scenario "
            f"lists {'them' if len(missing) > 1 else 'it'}: "
            f"{'the run ended early' if not is_complete(run.meta) else 'every point failed'}.",
            kind="note"))
    frame = combine([run])
    if not frame.empty and frame["repeat"].nunique() < 2:
        try:  # one repeat: the noise measured inside each point decides ties
            from .noise import point_noise

            noise = point_noise(run.summary, run.samples(), run.load())
            frame = pd.concat([frame, noise.set_index(frame.index)], axis=1)
        except Exception:  # noise is a refinement; the 5% floor still applies
            pass
    frame, dropped = _drop_bad_repeats(frame)
    if dropped:
        findings.append(Finding(
            f"Left out of the comparisons: {dropped} (the other repeats of those points "
            "are used).", kind="note"))
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
        f"{_name(row['transport'])} at {row['clients']:,.0f} subscribers, repeat "
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
                f"{_name(transport, True)}: no load point in both run {base.label} and run "
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
                f"Run {other.label} vs run {base.label}, {_name(transport)} {where}: not compared "
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
            f"Run {other.label} vs run {base.label}, {_name(transport)} {where}: "
            + "; ".join(parts) + ".", best=transport, kind="run-vs-run"))
    return findings
