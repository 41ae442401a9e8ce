"""The report's section on workers behind a broker: what the broker costs each transport.

A run whose points include a server of N workers behind Redis (``[server]
workers``, ``broker``; scenarios/scaleout.toml) gets, per transport and load
point, that shape set beside the one-process server of the same run at the same
point: CPU per delivered message (the workers summed, Redis apart, their total),
latency with the broker's leg of it (Redis accepting a publish -> a worker
reading it, from the workers' histograms), the publish round trip, memory per
connection, and one sentence per transport. Only rows that can carry a
comparison (validity ``ok`` or ``server-saturated`` on both sides) are
compared; the others are named with the reason.

Confidence as in the findings (report/findings.py): a ratio within 5 % is a
tie; with repeats the per-repeat ratios give its range (a range across 1 is a
tie); with one repeat a ratio inside both points' measured CPU noise
(report/noise.py) is a tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..measure.validity import SEVERITY, comparable
from . import colors, plots, topology
from .derived import derive
from .finding import Finding
from .findings import TIE_TOLERANCE, format_ratio, number

__all__ = ["BrokerCost", "broker_costs", "findings", "section"]

#: What identifies "the same point" besides the server's shape.
_KEYS = ("transport", "clients", "rate_msgs_s", "payload_bytes", "delay_ms", "keepalive",
         "engine", "proxy", "tls")
_FIGURES = ("server_cpu_s_per_1k", "broker_cpu_s_per_1k", "total_cpu_s_per_1k", "lat_p50_ms",
            "lat_p99_ms", "broker_transit_p50_ms", "broker_transit_p99_ms",
            "broker_transit_mean_ms", "broker_publish_p50_ms", "server_kib_per_conn",
            "broker_reads_per_msg", "lost", "noise_server_cpu_s_per_1k", "noise_lat_p50_ms")


@dataclass(frozen=True)
class BrokerCost:
    """One brokered shape against one process, at one point of one transport."""

    transport: str
    clients: float
    rate: float
    workers: int
    broker: str
    one: dict  # the one-process figures (medians over repeats)
    many: dict  # the brokered figures
    ratios: tuple[float, ...]  # total CPU per message, brokered / one process, per repeat
    why_not: str = ""  # why the two cannot be compared ("" = they can)

    @property
    def ratio(self) -> float:
        one, many = self.one.get("total_cpu_s_per_1k"), self.many.get("total_cpu_s_per_1k")
        if one is None or many is None or not one > 0 or math.isnan(many):
            return math.nan
        return many / one

    @property
    def shape(self) -> str:
        return topology.describe(self.workers, self.broker)


def _prepared(run) -> pd.DataFrame:
    """Derived rows with noise (one repeat) and every key present as text."""
    summary = run.summary
    if summary is None or summary.empty or "transport" not in summary.columns:
        return pd.DataFrame()
    frame = topology.tidy(derive(summary))
    if "fault" in frame.columns:  # a fault point measures the fault (report/resilience.py)
        frame = frame[frame["fault"].fillna("").astype(str).isin(("", "nan"))]
    for column in ("broker_cpu_s", *_FIGURES[3:11]):
        frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
    frame["broker_cpu_s_per_1k"] = frame["broker_cpu_s"] / frame["delivered"].where(
        frame["delivered"] > 0) * 1000
    frame["total_cpu_s_per_1k"] = frame["server_cpu_s_per_1k"] + frame["broker_cpu_s_per_1k"].fillna(0)
    frame["noise_server_cpu_s_per_1k"] = np.nan
    frame["noise_lat_p50_ms"] = np.nan
    if frame["repeat"].nunique() < 2 and (frame["broker"] != "none").any():
        try:  # one repeat: each point's own noise decides ties (report/noise.py)
            from .noise import point_noise

            noise = point_noise(frame, run.samples(), run.load())
            frame["noise_server_cpu_s_per_1k"] = noise["noise_server_cpu_s_per_1k"]
            frame["noise_lat_p50_ms"] = noise["noise_lat_p50_ms"]
        except Exception:  # a refinement: the 5 % floor still applies
            pass
    for key in _KEYS:
        values = frame[key].astype(object) if key in frame.columns else pd.Series("", index=frame.index)
        frame["_k_" + key] = values.where(values.notna(), "").astype(str)  # NaN keys must group
    return frame


def _worst(values: pd.Series) -> str:
    ranked = [v for v in values if v in SEVERITY]
    return min(ranked, key=SEVERITY.index) if ranked else ""


def broker_costs(run) -> list[BrokerCost]:
    """Every brokered shape of the run against one process at the same point."""
    frame = _prepared(run)
    if frame.empty or not (frame["broker"] != "none").any():
        return []
    keys = ["_k_" + key for key in _KEYS]
    out: list[BrokerCost] = []
    for _, rows in frame.groupby(keys, sort=False, dropna=False):
        plain = rows[(rows["workers"] == 1) & (rows["broker"] == "none")]
        for (workers, broker), many in rows[rows["broker"] != "none"].groupby(
                ["workers", "broker"], sort=True):
            first = many.iloc[0]
            why = ""
            if plain.empty:
                why = "no one-process point at this load in this run"
            else:
                bad = [f"{name}: {_worst(part['validity'])}" for name, part in
                       (("one process", plain), (topology.describe(workers, broker), many))
                       if not comparable(_worst(part["validity"]))]
                why = "; ".join(bad)
            ratios = ()
            if not plain.empty:
                paired = plain.set_index("repeat")["total_cpu_s_per_1k"].to_frame("one").join(
                    many.set_index("repeat")["total_cpu_s_per_1k"].to_frame("many"), how="inner")
                ratios = tuple(float(r.many / r.one) for r in paired.itertuples()
                               if r.one > 0 and not math.isnan(r.many))
            out.append(BrokerCost(
                transport=str(first["transport"]), clients=float(first["clients"]),
                rate=float(first["rate_msgs_s"]), workers=int(workers), broker=str(broker),
                one={c: float(plain[c].median()) for c in _FIGURES} if len(plain) else {},
                many={c: float(many[c].median()) for c in _FIGURES},
                ratios=ratios, why_not=why))
    order = colors.order_transports(list(dict.fromkeys(c.transport for c in out)))
    return sorted(out, key=lambda c: (order.index(c.transport), c.clients, c.rate, c.workers))


def _ms(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{number(value)} ms"


def _tie(cost: BrokerCost) -> str:
    """Why the CPU ratio is no clear difference, or ''."""
    ratio = cost.ratio
    if math.isnan(ratio):
        return ""
    if abs(ratio - 1) <= TIE_TOLERANCE:
        return "within 5%"
    if len(cost.ratios) >= 2:
        if min(cost.ratios) <= 1 <= max(cost.ratios):
            return f"the repeats disagree ({min(cost.ratios):.2f}–{max(cost.ratios):.2f}×)"
        return ""
    a, b = cost.one.get("noise_server_cpu_s_per_1k"), cost.many.get("noise_server_cpu_s_per_1k")
    if a is not None and b is not None and not (math.isnan(a) or math.isnan(b)):
        if max(ratio, 1 / ratio) <= (1 + a) * (1 + b):
            return f"inside this run's measured noise (±{100 * a:.0f}% and ±{100 * b:.0f}%)"
    return ""


def _where(cost: BrokerCost) -> str:
    return f"{colors.label(cost.transport)} at {cost.clients:,.0f} subscribers, {cost.rate:,.4g} msg/s"


def _sentence(cost: BrokerCost) -> Finding:
    name = colors.label(cost.transport)
    if cost.why_not:
        return Finding(f"{_where(cost)[0].upper()}{_where(cost)[1:]}: {cost.shape} not compared with "
                       f"one process ({cost.why_not}): those figures do not describe the server.",
                       "total_cpu_s_per_1k", cost.transport, cost.transport, kind="not-comparable")
    one, many, ratio = cost.one, cost.many, cost.ratio
    tie = _tie(cost)
    if tie:
        cpu = f"no clear difference in CPU per delivered message ({tie})"
    else:
        cpu = f"{format_ratio(ratio)} the CPU per delivered message"
        if len(cost.ratios) >= 2:
            cpu += f" ({min(cost.ratios):.1f}–{max(cost.ratios):.1f}×, {len(cost.ratios)} repeats)"
    broker = many.get("broker_cpu_s_per_1k", math.nan)
    text = (f"{_where(cost)[0].upper()}{_where(cost)[1:]}: {cost.shape} used {cpu}: "
            f"{number(many['total_cpu_s_per_1k'])} s per 1,000 delivered messages (workers "
            f"{number(many['server_cpu_s_per_1k'])}, Redis "
            f"{number(broker) if not math.isnan(broker) else 'not measured'}) against "
            f"{number(one['total_cpu_s_per_1k'])} for one process "
            f"({many['total_cpu_s_per_1k'] - one['total_cpu_s_per_1k']:+.3g} s); median latency "
            f"{_ms(many['lat_p50_ms'])} against {_ms(one['lat_p50_ms'])} "
            f"({many['lat_p50_ms'] - one['lat_p50_ms']:+.2f} ms)")
    if not math.isnan(many.get("broker_transit_p50_ms", math.nan)):
        text += (f", of which the broker's leg (Redis accepting the publish to the worker "
                 f"reading it) p50 {_ms(many['broker_transit_p50_ms'])}, p99 "
                 f"{_ms(many['broker_transit_p99_ms'])}, and the publish round trip to Redis "
                 f"p50 {_ms(many['broker_publish_p50_ms'])}")
    text += f"; p99 latency {_ms(many['lat_p99_ms'])} against {_ms(one['lat_p99_ms'])}."
    return Finding(text, "total_cpu_s_per_1k", name, name, ratio, "tie" if tie else "broker")


def findings(run) -> list[Finding]:
    """Per transport and brokered shape, at its largest point: the broker's cost; then which
    transport paid the least and the most, where two or more can be compared."""
    costs = broker_costs(run)
    out: list[Finding] = []
    largest: dict[tuple, BrokerCost] = {}
    for cost in costs:  # sorted by load: the last one per transport and shape is the largest
        largest[(cost.transport, cost.workers, cost.broker)] = cost
    for cost in largest.values():
        out.append(_sentence(cost))
    shapes = sorted({(c.workers, c.broker) for c in largest.values()})
    for workers, broker in shapes:
        usable = [c for c in largest.values() if (c.workers, c.broker) == (workers, broker)
                  and not c.why_not and not math.isnan(c.ratio)]
        if len({(c.clients, c.rate) for c in usable}) != 1 or len(usable) < 2:
            continue  # different loads per transport: no single sentence across them
        low, high = min(usable, key=lambda c: c.ratio), max(usable, key=lambda c: c.ratio)
        if high.ratio / low.ratio <= 1 + TIE_TOLERANCE:
            continue
        out.append(Finding(
            f"Against one process, {topology.describe(workers, broker)} cost "
            f"{colors.label(low.transport)} the least CPU per delivered message "
            f"({format_ratio(low.ratio)}) and {colors.label(high.transport)} the most "
            f"({format_ratio(high.ratio)}) at {_where(low).split(' at ', 1)[1]}.",
            "total_cpu_s_per_1k", low.transport, high.transport, high.ratio / low.ratio))
    return out


def _cell(value: float, digits: str = "") -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return format(value, digits) if digits else number(value)


def _table(costs: list[BrokerCost]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    columns = ("transport", "subscribers", "msg/s", "server", "CPU s / 1k msg (workers)",
               "Redis CPU s / 1k msg", "total × one process", "p50 (ms)", "p99 (ms)",
               "broker leg p50 (ms)", "broker leg p99 (ms)", "publish to Redis p50 (ms)",
               "KiB / connection", "reads / msg", "lost", "compared")
    rows = []
    for cost in costs:
        for shape, figures, ratio in (("one process", cost.one, math.nan),
                                      (cost.shape, cost.many, cost.ratio)):
            if not figures:
                continue
            rows.append((colors.label(cost.transport), f"{cost.clients:,.0f}", f"{cost.rate:,.4g}",
                         shape, _cell(figures["server_cpu_s_per_1k"]),
                         _cell(figures["broker_cpu_s_per_1k"]),
                         format_ratio(ratio) if not math.isnan(ratio) else "",
                         _cell(figures["lat_p50_ms"]), _cell(figures["lat_p99_ms"]),
                         _cell(figures["broker_transit_p50_ms"]),
                         _cell(figures["broker_transit_p99_ms"]),
                         _cell(figures["broker_publish_p50_ms"]),
                         _cell(figures["server_kib_per_conn"], ".1f"),
                         _cell(figures["broker_reads_per_msg"], ".2f"),
                         _cell(figures["lost"], ".0f"),
                         "" if shape == "one process" else (cost.why_not or "yes")))
    return columns, tuple(dict.fromkeys(rows))  # one process appears once per shape compared


@plots._styled
def cost_figure(costs: list[BrokerCost]) -> Figure | None:
    """CPU per 1,000 deliveries (workers + Redis stacked) and median latency, per shape."""
    costs = [c for c in costs if c.one]
    if not costs:
        return None
    largest: dict[tuple, BrokerCost] = {}
    for cost in costs:
        largest[(cost.transport, cost.workers, cost.broker)] = cost
    bars = []  # (label, transport, workers cpu, redis cpu, p50, broker leg p50)
    seen = set()
    for cost in largest.values():
        if (cost.transport, cost.clients, cost.rate) not in seen:
            seen.add((cost.transport, cost.clients, cost.rate))
            bars.append((f"{colors.label(cost.transport)}\none process", cost.transport,
                         cost.one["server_cpu_s_per_1k"], 0.0, cost.one["lat_p50_ms"], math.nan))
        many = cost.many
        bars.append((f"{colors.label(cost.transport)}\n{cost.workers}+{cost.broker}", cost.transport,
                     many["server_cpu_s_per_1k"], np.nan_to_num(many["broker_cpu_s_per_1k"]),
                     many["lat_p50_ms"], many["broker_transit_p50_ms"]))
    figure = Figure(figsize=(plots.FIGSIZE[0], 6.0))
    cpu_ax, lat_ax = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(bars))
    face = [colors.color(b[1]) for b in bars]
    cpu_ax.bar(x, [b[2] for b in bars], color=face, label="server (workers summed)")
    cpu_ax.bar(x, [b[3] for b in bars], bottom=[b[2] for b in bars], color="white",
               edgecolor=face, hatch="//", label="Redis")
    cpu_ax.set_ylabel("CPU s / 1,000 delivered")
    cpu_ax.legend(loc="upper left")
    lat_ax.bar(x, [b[4] for b in bars], color=face, label="median latency")
    lat_ax.scatter(x, [b[5] for b in bars], color="black", marker="_", s=400, zorder=3,
                   label="broker leg p50 (Redis → worker)")
    lat_ax.set_ylabel("ms")
    lat_ax.legend(loc="upper left")
    lat_ax.set_xticks(x, [b[0] for b in bars], fontsize=8)
    figure.tight_layout()
    return figure


def section(run) -> tuple[str, tuple[str, ...], tuple, tuple] | None:
    """(title, paragraphs, tables, figures) for a run with brokered points, else None."""
    costs = broker_costs(run)
    if not costs:
        return None
    meta = run.meta.get("broker") or {}
    text = [
        "Each brokered point ran N server processes on one port (SO_REUSEPORT) whose hub "
        "publishes through Redis Streams and fans out what each worker reads back "
        f"(servers/README.md, 'Workers behind Redis'; Redis {meta.get('version') or '?'} "
        "started per point by the suite, nothing saved). Placement: "
        f"{meta.get('placement') or 'not recorded'}",
        "CPU per 1,000 delivered messages: the server's process tree (parent and every "
        "worker, summed) and Redis sampled apart; 'total × one process' is (workers + Redis) "
        "over the one-process server of the same run at the same point. The broker leg is "
        "the workers' histogram of Redis accepting a publish (TIME inside the publish "
        "script) to a worker reading it, over the measurement window (two scrapes of every "
        "worker's /metrics); 'publish to Redis' is the publish script's round trip, which "
        "a publisher's 200 waits for. 'reads / msg' = messages the workers read from Redis "
        "per published message (one read per worker following the topic). 'KiB / "
        "connection' = what the server's processes (summed) grew by while the subscribers "
        "connected, before any message, per subscriber (what a worker sets up once per topic "
        "is included). The findings above say it per transport in words.",
    ]
    figures = []
    try:
        fig = cost_figure(costs)
    except Exception:  # a figure must not cost the section
        fig = None
    if fig is not None:
        figures.append(("broker_costs", "What the broker costs per delivered message",
                        "Top: CPU per 1,000 delivered messages, the server's processes summed "
                        "(filled) and Redis (hatched), one process against workers behind "
                        "Redis, at each transport's largest point. Bottom: median latency, the "
                        "black mark the broker's leg of it (Redis to the worker's read, p50).",
                        plots.to_png(fig)))
    return "Workers behind a broker", tuple(text), (_table(costs),), tuple(figures)
