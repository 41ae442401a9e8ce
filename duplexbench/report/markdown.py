"""report.md: the report as Markdown, for reading in a terminal, an editor or a PR.

Figures are separate PNG files next to the Markdown (Markdown cannot embed them
portably); report.html is the self-contained variant.
"""

from __future__ import annotations

from .content import ReportContent, Table

__all__ = ["render", "table"]


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(t: Table) -> str:
    lines = ["| " + " | ".join(_escape(c) for c in t.columns) + " |",
             "|" + "|".join("---" for _ in t.columns) + "|"]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def render(content: ReportContent, figure_links: dict[str, str]) -> str:
    """Markdown text; `figure_links` maps figure names to relative PNG paths."""
    out = [f"# {content.title}", ""]
    for run in content.runs:
        if not run.complete:
            out += [f"> **⚠ INCOMPLETE RUN {run.label}: status `{run.status}`"
                    + (f" — {run.reason}" if run.reason else "")
                    + ". Only the load points that finished are shown.**", ""]
    several = len(content.runs) > 1
    loud = [(run, w) for run in content.runs for w in run.warnings]
    if loud:
        out += ["## ⚠ Warnings", ""]
        for run, warning in loud:
            prefix = f"run {run.label}: " if several else ""
            text = f"**{warning.text}**" if warning.loud else warning.text
            out.append(f"- {'⚠ ' if warning.loud else ''}{prefix}{text}")
        out.append("")
    out += ["## Findings", ""]
    for run in content.runs:
        if several:
            out += [f"### Run {run.label} ({run.run_id})", ""]
        out += [f"- {f.text}" for f in run.findings] + [""]
    if content.comparisons:
        out += ["### Run against run", ""] + [f"- {f.text}" for f in content.comparisons] + [""]
    if content.claims is not None or content.claims_error:
        out += ["## What the documents claim, measured", ""]
        out += [table(content.claims), ""] if content.claims is not None else []
        if content.claims_rules:
            out += ["Verdict rules:", ""] + [f"- {rule}" for rule in content.claims_rules] + [""]
        out += [f"_{content.claims_error}_", ""] if content.claims_error else []
    for title, paragraphs, tables in content.extra:  # faults, soak (report/resilience.py)
        out += [f"## {title}", ""] + [x for p in paragraphs for x in (p, "")]
        out += [x for t in tables for x in (table(t), "")]
    out += ["## Summary", ""]
    for run in content.runs:
        if several:
            out += [f"### Run {run.label} ({run.run_id})", ""]
        out += [table(run.summary), ""]
    out += ["## Figures", ""]
    for figure in content.figures:
        out += [f"### {figure.title}", "", figure.caption, "",
                f"![{figure.title}]({figure_links[figure.name]})", ""]
    out += ["## Run metadata", "", table(content.metadata), "",
            f"_Generated {content.generated_at} by `python -m duplexbench report`._", ""]
    return "\n".join(out)
