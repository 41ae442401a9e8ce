"""reproduce's table: on the console, in reproduce.md, in reproduce.json.

One row per finding of every run (metric, point, who won, the ratio and the
interval the run stated, then every other run's ratio and what it means), the
coverage of the stated intervals per metric, the between-run noise these runs
measured beside the calibration the report uses, and the verdict line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..measure.results import atomic_write_text
from ..report.calibration import RATIO_RERUN_SD, RERUN_SD, ratio_rerun_sd, rerun_sd
from ..report.colors import label
from ..report.intervals import LEVEL
from .judge import Judged, RunRecord, as_float

__all__ = ["tables", "render_markdown", "render_text", "to_json", "write_outputs"]

_MARK = {"held": "held", "moved": "moved", "contradicted": "FLIPPED", "n/a": "n/a"}


def _ratio(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}" if value < 10 else f"{value:.3g}"


def _point(point: dict) -> str:
    clients = point.get("clients")
    text = f"{clients:,.0f} subs" if clients is not None else "?"
    rate = point.get("rate_msgs_s")
    return text + (f", {rate:,.0f}/s" if rate is not None else "")


def _finding_rows(judged: list[Judged]) -> list[list[str]]:
    rows = []
    for j in judged:
        f = j.finding
        lo, hi = as_float(f.get("lo")), as_float(f.get("hi"))
        interval = ("none" if math.isnan(lo) else "∞ (zero best)" if math.isinf(lo)
                    else f"{_ratio(lo)}–{_ratio(hi)}")
        others = ", ".join(f"{_ratio(c.ratio)} {_MARK[c.outcome]}" for c in j.checks)
        rows.append([j.run, f["metric"], _point(f.get("point") or {}),
                     f"{label(f['best'])} < {label(f['worst'])}", _ratio(as_float(f["ratio"])),
                     interval, f"{j.count('held')}/{len(j.checks)}",
                     str(j.count("contradicted")), others])
    return rows


FINDING_COLUMNS = ("run", "metric", "point", "better < worse", "ratio", "stated interval",
                   "held", "flipped", "other runs' ratios")
COVERAGE_COLUMNS = ("metric", "intervals checked", "covered", "coverage")
CALIBRATION_COLUMNS = ("metric", "transport", "figures", "between-run sd", "within-run sd",
                       "beyond within", f"needed for {LEVEL:.0%}", "suggested",
                       "model (calibration.py)")


RATIO_COLUMNS = ("metric", "pairs", "between-run sd", "within-run sd", "beyond within",
                 f"needed for {LEVEL:.0%}", "suggested", "model (calibration.py)")


def _sd(value) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def tables(runs: list[RunRecord], judged: list[Judged], cover: dict, calib: dict,
           ratio_calib: dict | None = None) -> dict:
    """The tables as lists of rows (strings)."""
    ratio_rows = [[metric, str(k["pairs"]),
                   *(_sd(k[x]) for x in ("between_sd", "within_sd", "moments_sd",
                                         "for_level_sd", "suggested_sd")),
                   _sd(ratio_rerun_sd(metric))]
                  for metric, k in sorted((ratio_calib or {}).items())]
    coverage_rows = []
    for metric in sorted(cover):
        c = cover[metric]
        rate = c.get("rate", math.nan)
        coverage_rows.append([metric, str(c.get("checked", 0)), str(c.get("covered", 0)),
                              "n/a" if math.isnan(rate) else f"{rate:.1%}"])
    calibration_rows = []
    for metric in sorted(calib):
        for transport, k in calib[metric].items():
            calibration_rows.append([
                metric, "all" if transport == "*" else label(transport), str(k["figures"]),
                *(_sd(k[x]) for x in ("between_sd", "within_sd", "moments_sd", "for_level_sd",
                                      "suggested_sd")),
                _sd(rerun_sd(metric, transport))])
    ties = [[r.label, str(len(r.findings)), str(len(r.ties)),
             "; ".join(f"{t['metric']} ({label(t['best'])} vs {label(t['worst'])}, "
                       f"{_ratio(as_float(t['ratio']))})" for t in r.ties),
             "" if r.exit_code is None else str(r.exit_code)] for r in runs]
    return {"findings": _finding_rows(judged), "coverage": coverage_rows,
            "calibration": calibration_rows, "ratio_calibration": ratio_rows, "runs": ties}


RUN_COLUMNS = ("run", "findings", "ties", "ties (metric, pair, ratio)", "exit")


def _verdict_line(verdict: dict) -> str:
    share = verdict["held_all_share"]
    return (f"{verdict['findings']} findings in {verdict['runs']} runs: "
            f"{verdict['held_all']} held in every other run "
            f"({'n/a' if math.isnan(share) else f'{share:.0%}'}; the bar is 95 %), "
            f"{verdict['contradicted_by_2_or_more']} contradicted by 2 or more other runs "
            f"(the bar is 0): {'OK' if verdict['ok'] else 'NOT REPRODUCIBLE'}")


def _md_table(columns, rows) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return lines


def render_markdown(title: str, command: str, built: dict, verdict: dict) -> str:
    lines = [f"# {title}", "", f"`{command}`", "", f"**{_verdict_line(verdict)}**", "",
             "## Findings and the other runs", "",
             "A finding held in another run when that run's ratio for the same pair, metric "
             "and load point fell inside the interval this run stated (where "
             f"{LEVEL:.0%} of reruns should fall); FLIPPED = the other run had the other "
             "winner.", ""]
    lines += _md_table(FINDING_COLUMNS, built["findings"])
    lines += ["", "## Coverage of the stated intervals, per metric", "",
              "Every figure's interval in one run against the same figure (metric, transport, "
              f"load point) in every other run; {LEVEL:.0%} is what the intervals claim.", ""]
    lines += _md_table(COVERAGE_COLUMNS, built["coverage"])
    lines += ["", "## Between-run noise, per metric and transport", "",
              "Log-scale standard deviations over the figures these runs share: the spread "
              "between runs, the runs' own sampling error (block bootstrap), the between-run "
              "part beyond it, the value that would make these runs' intervals cover "
              f"{LEVEL:.0%} of the pairs of runs, the suggested calibration (the larger of "
              "that and the between-run part's 90 % upper confidence bound) and the value "
              "the report uses (duplexbench/report/calibration.py).", ""]
    lines += _md_table(CALIBRATION_COLUMNS, built["calibration"])
    lines += ["", "## Between-run noise of ratios, per metric", "",
              "The same over the log ratio of every pair of transports at every load point "
              "(what a finding states): a rerun moves a run's transports together, so a "
              "ratio moves less than its two figures' noise added; the report's finding "
              "intervals use this row's model.", ""]
    lines += _md_table(RATIO_COLUMNS, built.get("ratio_calibration", []))
    lines += ["", "## Runs", ""]
    lines += _md_table(RUN_COLUMNS, built["runs"])
    return "\n".join(lines) + "\n"


def render_text(built: dict, verdict: dict) -> str:
    """The console form: aligned columns, the verdict last."""
    out = []
    for name, columns in (("findings", FINDING_COLUMNS), ("coverage", COVERAGE_COLUMNS),
                          ("calibration", CALIBRATION_COLUMNS),
                          ("ratio_calibration", RATIO_COLUMNS)):
        rows = [list(columns), *built.get(name, [])]
        widths = [max(len(r[i]) for r in rows) for i in range(len(columns) - 1)]
        for row in rows:
            out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths))
                       + "  " + row[-1])
        out.append("")
    out.append(_verdict_line(verdict))
    return "\n".join(out)


def to_json(runs: list[RunRecord], judged: list[Judged], cover: dict, calib: dict,
            verdict: dict, command: str, ratio_calib: dict | None = None) -> dict:
    def number(value):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return value

    return {
        "command": command,
        "level": LEVEL,
        "verdict": {k: number(v) for k, v in verdict.items()},
        "runs": [{"label": r.label, "path": r.path, "exit_code": r.exit_code,
                  "run_id": r.record.get("run_id"), "findings": len(r.findings),
                  "ties": len(r.ties)} for r in runs],
        "findings": [{"run": j.run, **j.finding,
                      "checks": [{"other": c.other, "ratio": number(c.ratio),
                                  "outcome": c.outcome} for c in j.checks]} for j in judged],
        "coverage": {m: {k: number(v) for k, v in c.items()} for m, c in cover.items()},
        "calibration": {m: {t: {k: number(v) for k, v in c.items()} for t, c in by.items()}
                        for m, by in calib.items()},
        "ratio_calibration": {m: {k: number(v) for k, v in c.items()}
                              for m, c in (ratio_calib or {}).items()},
        "model": {m: dict(t) for m, t in RERUN_SD.items()},
        "ratio_model": dict(RATIO_RERUN_SD),
    }


def write_outputs(out: Path, markdown: str, data: dict) -> tuple[Path, Path]:
    md, js = out / "reproduce.md", out / "reproduce.json"
    atomic_write_text(md, markdown)
    atomic_write_text(js, json.dumps(data, indent=1) + "\n")
    return md, js
