"""The report of one or several runs: report.md + report.html (``python -m duplexbench report``).

A run should end with something a person reads: which transport, at what cost,
and why, from that run's own numbers. The work is split by concern: ``load``
reads results, ``derived`` defines per-message costs and the comparison point,
``findings`` writes sentences and warnings, ``plots`` draws, ``content`` gathers
it all once, ``markdown`` / ``html`` lay it out. Heavy imports (matplotlib) happen
inside ``build_report`` so importing this package stays cheap.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReportPaths", "build_report"]


@dataclass(frozen=True)
class ReportPaths:
    """What `build_report` wrote."""

    markdown: Path
    html: Path
    figures: tuple[Path, ...]

    def summary(self) -> str:
        """What the command prints once the report is written."""
        return f"wrote {self.markdown}\nwrote {self.html} ({len(self.figures)} figures)"


def _write(path: Path, data: str | bytes) -> None:
    """Write to a temporary name and rename, as every results file is (docs/DESIGN.md)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    tmp.replace(path)


def build_report(run_dirs, out_dir=None) -> ReportPaths:
    """Write the report for `run_dirs` into `out_dir` (default: the first run directory).

    One run gives ``report.md`` / ``report.html`` / ``report-figures/`` and
    ``findings.json`` (the findings as data, report/rerun.py); several runs
    give ``report-side-by-side.*`` so that a comparison written into the first run's
    directory does not replace that run's own report.
    """
    from . import html, markdown
    from .content import collect
    from .load import load_runs

    run_dirs = [Path(p) for p in run_dirs]
    if not run_dirs:
        raise ValueError("build_report needs at least one results directory")
    runs = load_runs(run_dirs)
    out = Path(out_dir) if out_dir is not None else runs[0].path
    out.mkdir(parents=True, exist_ok=True)
    stem = "report" if len(runs) == 1 else "report-side-by-side"
    content = collect(runs)
    figure_dir = out / f"{stem}-figures"
    figure_dir.mkdir(exist_ok=True)
    figures, links = [], {}
    for figure in content.figures:
        path = figure_dir / f"{figure.name}.png"
        _write(path, figure.png)
        figures.append(path)
        links[figure.name] = f"{figure_dir.name}/{path.name}"
    md_path, html_path = out / f"{stem}.md", out / f"{stem}.html"
    _write(md_path, markdown.render(content, links))
    _write(html_path, html.render(content))
    if len(runs) == 1:  # the findings as data, for `reproduce` and other tools (rerun.py)
        from .rerun import FINDINGS_JSON

        _write(out / FINDINGS_JSON, json.dumps(content.runs[0].record, indent=1) + "\n")
    return ReportPaths(md_path, html_path, tuple(figures))
