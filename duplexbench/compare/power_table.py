"""gate-power's tables: per case how often the gate flagged it, and the change as measured.

Kept apart from the running (:mod:`~duplexbench.compare.power`) because it only reads the
round records (``round-NNN.json``): the table of a run that was interrupted, resumed or is
still going is made the same way, from whatever rounds are complete.

The injected change is reported *as measured* in the runs themselves, never as the setting:
+4 us of CPU per delivery is a different share of each transport's cost, and a 1 ms delay
moves a median by what the event loop makes of it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence

__all__ = ["CPU_METRIC", "case_rows", "cpu_power", "markdown", "smallest_caught"]

CPU_METRIC = "server_cpu_us_per_msg"
#: The figure each kind of injection moves, and how its change is shown.
MOVED = {"cpu": (CPU_METRIC, "change", "%"), "delay": ("lat_p50_ms", "delta", "ms"),
         "pad": ("bytes_down_per_msg", "delta", "B")}
#: Caught "9 in 10": the issue's aim for a detection rate.
CAUGHT_SHARE = 0.9


def _fmt(value: float, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if unit == "%":
        return f"{value * 100:+.1f} %"
    return f"{value:+.2f} {unit}" if unit == "ms" else f"{value:+.1f} {unit}"


def _measured(records: Sequence[dict], name: str, metric: str, field: str) -> dict[str, list]:
    """transport -> the figure's change in every round that measured it."""
    out: dict[str, list] = {}
    for record in records:
        case = record["cases"].get(name) or {}
        for transport, figures in (case.get("measured") or {}).items():
            value = (figures.get(metric) or {}).get(field)
            if value is not None and math.isfinite(value):
                out.setdefault(transport, []).append(value)
    return out


def _names(records: Sequence[dict], name: str) -> list[dict]:
    return [record["cases"][name] for record in records if name in record["cases"]]


def case_rows(records: Sequence[dict]) -> list[dict]:
    """One row per case: runs, flagged, metrics named, the change as measured."""
    order: list[str] = []
    for record in records:
        order += [n for n in record["cases"] if n not in order]
    rows = []
    for name in order:
        verdicts = _names(records, name)
        first = verdicts[0]
        kind = first.get("kind", "none")
        judged = [v for v in verdicts if v.get("exit") in (0, 1)]
        flagged = sum(1 for v in judged if v.get("flagged"))
        named = Counter(f"{r['metric']}" for v in judged for r in v.get("regressions", []))
        per_transport = Counter((r["transport"], r["metric"]) for v in judged
                                for r in v.get("regressions", []))
        moved = {}
        metric, field, unit = MOVED.get(kind, (CPU_METRIC, "change", "%"))
        for transport, values in sorted(_measured(records, name, metric, field).items()):
            moved[transport] = statistics.median(values)
        rows.append({"case": name, "kind": kind, "size": first.get("size", 0),
                     "label": first.get("label", name), "runs": len(judged),
                     "not_judged": len(verdicts) - len(judged), "flagged": flagged,
                     "named": dict(named), "named_by_transport": dict(per_transport),
                     "metric": metric, "unit": unit, "moved": moved})
    return rows


def cpu_power(records: Sequence[dict]) -> list[dict]:
    """Per CPU case and transport: the measured change and how often the gate named
    server CPU per message for that transport."""
    out = []
    for row in case_rows(records):
        if row["kind"] not in ("cpu", "none"):
            continue
        changes = _measured(records, row["case"], CPU_METRIC, "change")
        for transport in sorted(changes):
            values = changes[transport]
            out.append({"case": row["case"], "kind": row["kind"], "transport": transport,
                        "change_median": statistics.median(values),
                        "change_min": min(values), "change_max": max(values),
                        "named": row["named_by_transport"].get((transport, CPU_METRIC), 0),
                        "runs": row["runs"]})
    return out


def smallest_caught(records: Sequence[dict]) -> dict[str, dict | None]:
    """Per transport, the smallest measured CPU change named in >= 9 of 10 runs (None: none)."""
    best: dict[str, dict | None] = {}
    for entry in cpu_power(records):
        if entry["kind"] != "cpu":
            continue
        transport = entry["transport"]
        best.setdefault(transport, None)
        if entry["runs"] and entry["named"] >= math.ceil(CAUGHT_SHARE * entry["runs"]):
            current = best[transport]
            if current is None or entry["change_median"] < current["change_median"]:
                best[transport] = entry
    return best


def markdown(records: Sequence[dict], header: str = "") -> str:
    """The tables of docs/regression.md: per case, then CPU per transport, then the smallest
    CPU regression caught."""
    lines = [header] if header else []
    lines += ["| case | injected | measured change (median over runs) | gate flagged | "
              "metrics named (runs) |", "|---|---|---|---|---|"]
    for row in case_rows(records):
        moved = ", ".join(f"{t} {_fmt(v, row['unit'])}" for t, v in row["moved"].items())
        if row["kind"] == "none":
            moved = f"server CPU/msg: {moved}" if moved else "–"
        named = ", ".join(f"`{m}` {n}" for m, n in sorted(row["named"].items(),
                                                            key=lambda kv: -kv[1])) or "–"
        flagged = f"{row['flagged']} / {row['runs']}"
        if row["kind"] == "none":
            flagged += " (false alarms)"
        if row["not_judged"]:
            flagged += f" ({row['not_judged']} not judged)"
        lines.append(f"| `{row['case']}` | {row['label']} | {moved} | {flagged} | {named} |")
    power = cpu_power(records)
    if power:
        lines += ["", "Server CPU per delivered message, per transport (`server_cpu_us_per_msg` "
                  "named by the gate for that transport):", "",
                  "| case | transport | measured change: median (min … max) | named |",
                  "|---|---|---|---|"]
        for e in power:
            lines.append(f"| `{e['case']}` | {e['transport']} | {_fmt(e['change_median'], '%')} "
                         f"({_fmt(e['change_min'], '%')} … {_fmt(e['change_max'], '%')}) | "
                         f"{e['named']} / {e['runs']} |")
        caught = smallest_caught(records)
        if caught:
            lines += ["", "Smallest server-CPU regression caught in >= 9 of 10 runs: " + "; ".join(
                f"{t} {_fmt(e['change_median'], '%')} (`{e['case']}`)" if e else f"{t} none"
                for t, e in sorted(caught.items())) + "."]
    return "\n".join(lines) + "\n"
