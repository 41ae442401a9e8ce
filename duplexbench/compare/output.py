"""The regression gate's verdicts as text (terminal, CI log), Markdown (job summary, PR
comment) and JSON (scripts). Split from :mod:`duplexbench.compare.runs`, which reaches them; this
module only formats a :class:`~duplexbench.compare.runs.Comparison`.

Every output carries the same facts: per transport, point and metric the two values, the
change, the p-value and the verdict; *why* a metric was not judged (``unjudged: current
loadgen-saturated``) or not gated (an unstable tail) is in the verdict cell or the notes, never
left out; the last line names every regression (metric and transport) or says OK.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from ..measure.results import Run
from .model import MISSING, UNJUDGED, Comparison, Row
from .stats import BETTER, WORSE

__all__ = ["HEADER", "format_markdown", "format_text", "summary_line", "to_json", "write_outputs"]


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"


def _pct(row: Row) -> str:
    v = row.verdict
    if v is None:
        return "-"
    if math.isnan(v.change):
        return f"{v.delta:+.4g}"
    return f"{v.change * 100:+.1f}%"


def _p(row: Row) -> str:
    p = row.verdict.p_value if row.verdict else None
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _word(row: Row) -> str:
    if row.status == UNJUDGED:
        return f"unjudged: {row.why}" if row.why else UNJUDGED
    if row.status in (BETTER, WORSE) and not row.gated:
        return f"{row.status} (info)"
    return row.status


def _cells(row: Row) -> list[str]:
    v = row.verdict
    return [row.transport, row.point, row.metric, _num(v.baseline if v else None),
            _num(v.current if v else None), _pct(row), _p(row), _word(row)]


HEADER = ["transport", "point", "metric", "baseline", "current", "change", "p", "verdict"]


def _p_clause(row: Row) -> str:
    """", p=0.003" / ", p<0.001" for sample-based verdicts, "" where no test was made."""
    text = _p(row)
    return "" if text == "-" else (f", p{text}" if text.startswith("<") else f", p={text}")


def _regression_text(comp: Comparison, row: Row) -> str:
    where = f"{row.transport} [{row.point}]" if comp.multi_point else row.transport
    v = row.verdict
    if v is None:  # a verdict without figures: the point's validity (duplexbench/compare/comparable.py)
        return f"{where} {row.metric}: {row.note}"
    change = _pct(row) if math.isnan(v.change) or abs(v.change) < 0.1 else f"{v.change * 100:+.0f}%"
    p = _p_clause(row)
    return f"{where} {row.metric} {change}" + (f" ({p[2:]})" if p else "")


def summary_line(comp: Comparison) -> str:
    regs = comp.regressions
    if regs:
        return "REGRESSION: " + "; ".join(_regression_text(comp, r) for r in regs)
    compared = sum(1 for r in comp.rows if r.status not in (MISSING, UNJUDGED))
    unjudged = sorted({f"{r.transport} ({r.why})" for r in comp.rows if r.status == UNJUDGED})
    tail = f"; not judged: {', '.join(unjudged)}" if unjudged else ""
    if comp.disturbed:  # a "same" there may be the disturbed repeat's: said in the verdict
        where = sorted({f"{d.transport} ({d.side} repeat {d.repeat})" for d in comp.disturbed})
        tail += f"; disturbed repeats, rerun to judge them: {', '.join(where)}"
    return f"OK: no regression ({compared} metrics compared{tail})"


def format_text(comp: Comparison) -> str:
    table = [HEADER] + [_cells(r) for r in comp.rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = [f"baseline: {comp.baseline.path} ({comp.baseline.run_id})",
             f"current:  {comp.current.path} ({comp.current.run_id})", ""]
    for line in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    if comp.notes:
        lines += [""] + [f"note: {n}" for n in comp.notes]
    lines += ["", summary_line(comp)]
    return "\n".join(lines)


def format_markdown(comp: Comparison) -> str:
    regs = comp.regressions
    head = f"{len(regs)} regression(s)" if regs else "no regression"
    lines = [f"## duplexbench regression check: {'FAIL' if regs else 'PASS'}, {head}", "",
             f"Baseline `{comp.baseline.run_id}` ({_git(comp.baseline)}) vs current "
             f"`{comp.current.run_id}` ({_git(comp.current)}).", ""]
    if regs:
        lines += ["### Regressions", ""]
        for r in regs:
            v = r.verdict
            if v is None:
                lines.append(f"- **{r.transport}** `{r.metric}` ({r.point}): {r.note}")
                continue
            lines.append(f"- **{r.transport}** `{r.metric}` ({r.point}): {_num(v.baseline)} -> "
                         f"{_num(v.current)} ({_pct(r)}{_p_clause(r)}; {v.reason})")
        lines.append("")
    changed = [r for r in comp.rows if r.status in (BETTER, WORSE, MISSING, UNJUDGED)]
    if changed:
        lines += ["### Changes", "", _md_table(changed), ""]
    lines += ["<details><summary>All metrics</summary>", "", _md_table(comp.rows), "",
              "</details>", ""]
    if comp.notes:
        lines += ["### Notes", ""] + [f"- {n}" for n in comp.notes] + [""]
    if comp.paired:
        lines += ["A/B mode: both versions' servers ran on this machine, interleaved (A B B A ...), "
                  "with one load generator; consistency is judged per repeat pair, and p90/p99 "
                  "gate only where each side's own repeats agree on them (stable tails).", ""]
    lines += ["A metric is *worse* only when its change passes a minimum change, a significance "
              "test and is consistent across repeats; `(info)` metrics never fail the check; "
              "`unjudged` rows come from points whose validity cannot carry a verdict. "
              "See docs/regression.md.", "", f"`{summary_line(comp)}`", ""]
    return "\n".join(lines)


def _md_table(rows: Sequence[Row]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = _cells(r)
        if r.regression:
            cells[-1] = f"**{cells[-1]}**"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _git(run: Run) -> str:
    git = run.meta.get("git") or {}
    commit = str(git.get("commit") or "unknown commit")[:10]
    rev = (run.meta.get("ab") or {}).get("base", {}).get("rev") if git.get("rev") else None
    return commit + (" dirty" if git.get("dirty") else "") + (f" = {rev}" if rev else "")


def to_json(comp: Comparison) -> dict:
    def row(r: Row) -> dict:
        d = {"transport": r.transport, "point": r.point, "metric": r.metric, "status": r.status,
             "gated": r.gated, "regression": r.regression, "note": r.note, "why": r.why}
        if r.verdict:
            d.update({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                      for k, v in asdict(r.verdict).items() if k != "verdict"})
        return d

    return {"baseline": str(comp.baseline.path), "current": str(comp.current.path),
            "regression": bool(comp.regressions), "summary": summary_line(comp),
            "regressions": [row(r) for r in comp.regressions],
            "rows": [row(r) for r in comp.rows], "notes": list(comp.notes),
            "disturbed": [d.to_json() for d in comp.disturbed]}


def write_outputs(comp: Comparison, markdown: str | Path | None, json_path: str | Path | None) -> None:
    """The Markdown and JSON files, where asked for (parent folders created)."""
    if markdown:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(format_markdown(comp), encoding="utf-8")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(to_json(comp), indent=2) + "\n", encoding="utf-8")
