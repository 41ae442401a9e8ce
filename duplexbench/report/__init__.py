"""`python -m duplexbench report RUN_DIR [RUN_DIR …] [--out DIR]`: report.md + report.html.

A run should end with something a person reads: which transport, at what cost,
and why, from that run's own numbers. The work is split by concern: ``load``
reads results, ``derived`` defines per-message costs and the comparison point,
``findings`` writes sentences and warnings, ``plots`` draws, ``content`` gathers
it all once, ``markdown`` / ``html`` lay it out. Heavy imports (matplotlib) happen
inside ``build_report`` so importing this package stays cheap.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReportPaths", "build_report", "main"]


@dataclass(frozen=True)
class ReportPaths:
    """What `build_report` wrote."""

    markdown: Path
    html: Path
    figures: tuple[Path, ...]


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

    One run gives ``report.md`` / ``report.html`` / ``report-figures/``; several runs
    give ``report-side-by-side.*`` so that a comparison written into the first run's
    directory does not replace that run's own report.
    """
    from duplexbench.report import html, markdown
    from duplexbench.report.content import collect
    from duplexbench.report.load import load_runs

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
    return ReportPaths(md_path, html_path, tuple(figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench report",
        description="Write report.md and a self-contained report.html for result directories. "
                    "Several directories are reported side by side (run A, B, …).")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="results directory (e.g. results/latest)")
    parser.add_argument("--out", metavar="DIR",
                        help="where to write (default: the first RUN_DIR)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    for run_dir in args.run_dirs:
        if not (Path(run_dir) / "meta.json").exists():
            print(f"duplexbench report: {run_dir}: no meta.json; not a results directory",
                  file=sys.stderr)
            return 2
    paths = build_report(args.run_dirs, args.out)
    print(f"wrote {paths.markdown}\nwrote {paths.html} ({len(paths.figures)} figures)")
    return 0
