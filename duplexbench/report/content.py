"""Everything a report says, computed once; markdown.py and html.py only lay it out.

Keeping the numbers, sentences and figures in one frozen structure means the
Markdown and HTML reports cannot disagree, and tests can check content without
parsing either format.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from . import plots, topology
from .colors import label
from .derived import (
    AXES,
    AXIS_LABELS,
    aggregate,
    combine,
    describe_point,
    reference_point,
    swept_axes,
)
from .finding import Finding
from .findings import Warning_, compare_runs, number, run_warnings
from .load import ReportRun, is_complete
from .rerun import run_record
from .serverinfo import metadata_rows, server_findings

__all__ = ["FigureItem", "Table", "RunSection", "ReportContent", "collect", "TABLE_COLUMNS"]


@dataclass(frozen=True)
class FigureItem:
    name: str  # file stem: "latency_cdf"
    title: str
    caption: str  # what is plotted, at which load point, and how to read it
    png: bytes


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class RunSection:
    label: str
    run_id: str
    path: str
    complete: bool
    status: str
    reason: str
    warnings: tuple[Warning_, ...]
    findings: tuple[Finding, ...]
    summary: Table
    #: findings.json's content (report/rerun.py): the findings and figures as data.
    record: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ReportContent:
    title: str
    runs: tuple[RunSection, ...]
    metadata: Table  # one column per run: side by side
    comparisons: tuple[Finding, ...]  # run B vs run A, ...
    figures: tuple[FigureItem, ...]
    claims: Table | None  # "What the documents claim, measured" (claims.py), if any
    claims_error: str = ""
    generated_at: str = ""
    #: What "confirmed" means per kind of claim row (claims.VERDICT_RULES), under the table.
    claims_rules: tuple[str, ...] = ()
    #: Fault and soak sections (report/resilience.py): (title, paragraphs, tables).
    extra: tuple[tuple[str, tuple[str, ...], tuple[Table, ...]], ...] = ()


#: summary.csv column -> heading, for the key columns of the summary table.
TABLE_COLUMNS = {
    "transport": "transport",
    # The server's shape (report/topology.py): shown when the run varies it.
    "workers": "workers",
    "broker": "broker",
    "clients": "subscribers",
    "rate_msgs_s": "rate (msg/s)",
    "payload_bytes": "payload (B)",
    "delay_ms": "delay (ms)",
    "repeat": "repeat",
    "delivered": "delivered",
    "lost": "lost",
    "late": "late",
    "throughput_msgs_s": "delivered/s",
    "lat_p50_ms": "p50 (ms)",
    "lat_p99_ms": "p99 (ms)",
    "lat_p999_ms": "p99.9 (ms)",
    "lat_samples": "samples",
    "server_cpu_pct": "server CPU (%)",
    "server_cpu_s_per_1k": "server CPU s / 1k msg",
    "client_cpu_pct": "loadgen CPU (%)",
    "client_cpu_s_per_1k": "loadgen CPU s / 1k msg",
    "server_rss_mib_max": "server RSS (MiB)",
    # The slope over the subscriber sweep (derived.py): n/a without a sweep.
    "server_rss_kib_per_conn": "server KiB / held connection",
    "bytes_per_msg": "bytes / msg",
    "ip_bytes_per_msg": "IP bytes / msg",
    "http_requests_per_msg": "HTTP req / msg",
    "validity": "validity",
}
_COUNTS = {"clients", "delivered", "lost", "late", "lat_samples", "repeat", "workers"}


def _cell(column: str, value) -> str:
    if column == "transport":
        return label(value)
    if isinstance(value, str):
        return value
    if pd.isna(value):
        return "n/a"
    if column in _COUNTS:
        return f"{value:,.0f}"
    return number(value)


def _summary_table(run: ReportRun) -> Table:
    frame = combine([run])
    if len(frame):
        frame = topology.tidy(frame)
    columns = [c for c in TABLE_COLUMNS if c in frame.columns]
    # Columns the run does not vary or record add width, not information.
    for optional in ("delay_ms", "repeat", *topology.COLUMNS):
        if optional in columns and frame[optional].dropna().nunique() <= 1:
            columns.remove(optional)
    for optional in ("late", "ip_bytes_per_msg", "server_rss_kib_per_conn"):
        if optional in columns and frame[optional].isna().all():  # not measured in this run
            columns.remove(optional)
    if "pattern" in frame.columns and frame["pattern"].dropna().nunique() > 1:
        columns.insert(1, "pattern")  # a pattern sweep: fan-out and echo rows side by side
    rows = [[_cell(c, row[c]) for c in columns] for _, row in frame.iterrows()]
    headings = [TABLE_COLUMNS.get(c, c) for c in columns]
    from .floor import floor_columns, run_floor  # a run with tcp: every row ÷ tcp's

    for heading, cells in floor_columns(run_floor(run)[1]).items():
        headings.append(heading)
        for cells_row, cell in zip(rows, cells):
            cells_row.append(cell)
    return Table(tuple(headings), tuple(tuple(r) for r in rows))


def _duration(meta: dict) -> str:
    try:
        start = datetime.fromisoformat(str(meta["started_at"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(meta["ended_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError, TypeError):
        return ""
    return f" ({(end - start).total_seconds():,.0f} s)"


def _metadata_rows(meta: dict) -> dict[str, str]:
    scenario = meta.get("scenario") or {}
    if not isinstance(scenario, dict):
        scenario = {"name": str(scenario)}
    git = meta.get("git") or {}
    affinity = meta.get("affinity") or {}
    inject = meta.get("inject") or {}
    packages = meta.get("packages") or {}
    status = str(meta.get("status", "unknown"))
    if meta.get("reason"):
        status += f": {meta['reason']}"
    return {
        "run id": str(meta.get("run_id", "")),
        "status": status,
        "scenario": f"{scenario.get('name', '?')} ({scenario.get('path', '?')})",
        "engine": str(meta.get("engine", "")),
        "started": str(meta.get("started_at", "")),
        "ended": f"{meta.get('ended_at') or 'not recorded'}{_duration(meta)}",
        "machine": f"{meta.get('hostname', '?')}: {meta.get('cpu_model', '?')}, "
                   f"{meta.get('cpu_count', '?')} CPUs",
        "kernel": str(meta.get("kernel", "")),
        "python": str(meta.get("python", "")),
        "packages": ", ".join(f"{k} {v}" for k, v in sorted(packages.items())),
        "git": (f"{str(git.get('commit', '?'))[:12]}{' (dirty)' if git.get('dirty') else ''}"
                if git else "not recorded"),
        "affinity": (f"server cores {affinity.get('server', '?')}, "
                     f"load generator cores {affinity.get('loadgen', '?')}" if affinity
                     else "not pinned"),
        "clock": str(meta.get("clock", "")),
        "gc": str(meta.get("gc", "")),
        "injected faults": (", ".join(f"{k}={v}" for k, v in inject.items()) if any(inject.values())
                            else "none"),
        "schema version": str(meta.get("schema_version", "?")),
        **metadata_rows(meta),  # outside server, probe, TLS
    }


def _metadata(runs: list[ReportRun]) -> Table:
    per_run = [_metadata_rows(run.meta) for run in runs]
    keys = list(dict.fromkeys(k for rows in per_run for k in rows))
    columns = ("", *(f"run {run.label}" if len(runs) > 1 else "value" for run in runs))
    return Table(columns, tuple((k, *(rows.get(k, "") for rows in per_run)) for k in keys))


def _samples_at(runs: list[ReportRun], agg: pd.DataFrame, point) -> pd.DataFrame:
    """Raw samples of every run at the reference load point, with a `run` column."""
    frames = []
    for run in runs:
        samples = run.samples()
        if samples is None or samples.empty:
            continue
        keys = ["transport", "point", "repeat"]
        from .infra import main_rows  # the rows the comparisons use: no other server shape

        axes = main_rows(run.summary)[keys + list(AXES)].drop_duplicates(keys)
        samples = samples.merge(axes.astype({"point": samples["point"].dtype,
                                             "repeat": samples["repeat"].dtype}), on=keys)
        if point is not None:
            samples = samples[point.mask(samples)]
        frames.append(samples.assign(run=run.label))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _figures(runs: list[ReportRun]) -> list[FigureItem]:
    agg = aggregate(combine(runs))
    if agg.empty:
        return []
    point = reference_point(agg)
    swept = swept_axes(agg)
    where = describe_point(point, swept)
    items: list[tuple[str, str, str, object]] = []
    items.append(("latency_cdf", f"Latency CDF {where}",
                  f"Share of deliveries at or below each latency, {where}, measured from the "
                  "intended send time (coordinated omission corrected). Further left is faster; "
                  "the gap at the top is the tail.",
                  plots.latency_cdf(_samples_at(runs, agg, point),
                                    title=f"Latency distribution {where}")))
    for axis in AXES:
        name = AXIS_LABELS[axis].split(" (")[0]
        items.append((f"latency_vs_{axis}", f"Latency percentiles vs {name}",
                      f"p50 and p99 latency against {name}"
                      + (f"; other swept axes held {where}." if len(swept) > 1 else "."),
                      plots.latency_vs(agg, axis, point)))
    rest = "" if len(swept) < 2 else f" Other swept axes held {where}."
    items += [
        ("server_cpu_per_1k", "Server CPU per 1,000 delivered messages",
         "Server process CPU time (user + system) divided by delivered messages." + rest,
         plots.server_cpu_per_1k(agg, point)),
        ("cpu_server_vs_loadgen", "Server CPU next to load-generator CPU",
         "Each process on its own core: above 90% of a core the load generator, not the server, "
         "limits latency and throughput." + rest, plots.cpu_server_vs_loadgen(agg, point)),
        ("server_rss_per_connection", "Server memory per open connection",
         "Peak server RSS against peak open connections; the slope (in the legend) is what each "
         "added connection costs, the intercept the server's baseline. Without a subscriber "
         "sweep: peak RSS ÷ connections, baseline included." + rest,
         plots.server_rss_per_connection(agg, point)),
        ("bytes_per_message", f"Bytes per delivered message {where}",
         f"Bytes on subscriber connections per delivered message {where}, counted at the socket "
         "(headers, framing, handshakes amortised): the message itself, then overhead each way.",
         plots.bytes_per_message(agg, point)),
        ("requests_per_message", "HTTP requests per delivered message",
         "HTTP requests on subscriber connections per delivered message (WebSocket: the "
         "handshake only)." + rest, plots.requests_per_message(agg, point)),
        ("delivery", "Delivery problems",
         "Lost, duplicated and reordered messages summed over all load points.",
         plots.delivery(agg)),
    ]
    try:  # a run with tcp: the floor ratios (report/floor.py)
        from .floor import floor_items

        items += floor_items(runs)
    except Exception:  # a bug there must not cost the rest of the report
        pass
    return [FigureItem(name, title, caption, plots.to_png(fig))
            for name, title, caption, fig in items if fig is not None]


def _claims_rules() -> tuple[str, ...]:
    try:
        return tuple(importlib.import_module("duplexbench.report.claims").VERDICT_RULES)
    except (ImportError, AttributeError):
        return ()


def _claims(runs: list[ReportRun]) -> tuple[Table | None, str]:
    """The network engineer's claims module, when it exists and has rows for these runs."""
    try:
        module = importlib.import_module("duplexbench.report.claims")
    except ImportError:
        return None, ""
    try:
        # The canonical results.Run when the results module loaded the run (claims.py's type).
        rows = module.claim_rows([run.source if run.source is not None else run for run in runs])
    except Exception as exc:  # a claims bug must not cost the rest of the report
        return None, f"claims could not be computed: {type(exc).__name__}: {exc}"
    if not rows:
        return None, ""
    keys = ("source", "claim", "prediction", "measurement", "ratio", "verdict")
    cells = tuple(tuple(_cell(k, row.get(k, "")) if not isinstance(row.get(k), str)
                        else row[k] for k in keys) for row in rows)
    return Table(keys, cells), ""


def _section(run: ReportRun) -> RunSection:
    findings, record = run_record(run)  # one pass over the samples for both
    return RunSection(run.label, run.run_id, str(run.path), is_complete(run.meta),
                      str(run.meta.get("status", "unknown")), str(run.meta.get("reason") or ""),
                      tuple(run_warnings(run)),
                      (*findings, *server_findings(run), *_broker_findings(run)),
                      _summary_table(run), record)


def collect(runs: list[ReportRun]) -> ReportContent:
    if not runs:
        raise ValueError("a report needs at least one run")
    sections = tuple(_section(run) for run in runs)
    comparisons = tuple(f for other in runs[1:] for f in compare_runs(runs[0], other))
    claims, claims_error = _claims(runs)
    extra, extra_figures = _extra(runs)
    if len(runs) == 1:
        title = f"duplexbench report: {runs[0].run_id}"
    else:
        title = "duplexbench report: " + " vs ".join(f"{r.label} ({r.run_id})" for r in runs)
    return ReportContent(title, sections, _metadata(runs), comparisons,
                         tuple(_figures(runs)) + extra_figures, claims, claims_error,
                         datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
                         extra=extra, claims_rules=_claims_rules() if claims is not None else ())


def _extra(runs: list[ReportRun]) -> tuple[tuple, tuple[FigureItem, ...]]:
    """Fault and soak sections; a bug there must not cost the rest of the report."""
    try:
        from .resilience import sections

        built = sections(runs)
    except Exception as exc:
        scaleout, scaleout_figures = _scaleout(runs)
        return ((("Faults and soak", (f"could not be computed: {type(exc).__name__}: {exc}",),
                  ()),) + scaleout + _infra(runs), scaleout_figures)
    extra = tuple((s.title, s.paragraphs, tuple(Table(c, r) for c, r in s.tables)) for s in built)
    figures = tuple(FigureItem(*f) for s in built for f in s.figures)
    scaleout, scaleout_figures = _scaleout(runs)
    return extra + scaleout + _infra(runs), figures + scaleout_figures


def _broker_findings(run: ReportRun) -> list[Finding]:
    """What the broker cost each transport (report/scaleout.py); a bug there costs only it."""
    try:
        from .scaleout import findings

        return findings(run)
    except Exception as exc:
        return [Finding(f"Workers behind a broker: could not be computed: "
                        f"{type(exc).__name__}: {exc}", kind="note")]


def _scaleout(runs: list[ReportRun]) -> tuple[tuple, tuple[FigureItem, ...]]:
    """Workers behind a broker, per run that has brokered points (report/scaleout.py)."""
    out, figures = [], []
    for run in runs:
        try:
            from .scaleout import section

            built = section(run)
        except Exception as exc:
            built = ("Workers behind a broker", (f"could not be computed: {type(exc).__name__}: "
                                                 f"{exc}",), (), ())
        if built is None:
            continue
        title, paragraphs, tables, figs = built
        if len(runs) > 1:
            title += f" (run {run.label})"
        out.append((title, paragraphs, tuple(Table(c, r) for c, r in tables)))
        figures += [FigureItem(*f) for f in figs]
    return tuple(out), tuple(figures)


def _infra(runs: list[ReportRun]) -> tuple:
    """nginx in the path, browsers as clients, the connection limit (report/infra.py)."""
    try:
        from .infra import sections

        built = sections(runs)
    except Exception as exc:  # a bug there must not cost the rest of the report
        return (("Real infrastructure", (f"could not be computed: {type(exc).__name__}: {exc}",),
                 ()),)
    try:
        from .http2 import sections as http2_sections

        built = list(built) + http2_sections(runs)
    except Exception as exc:  # likewise
        return (("HTTP/2 against HTTP/1.1", (f"could not be computed: {type(exc).__name__}: {exc}",),
                 ()),)
    return tuple((s.title, s.paragraphs, (Table(s.columns, s.rows),) if s.rows else ())
                 for s in built)
