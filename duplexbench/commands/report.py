"""`python -m duplexbench report RUN_DIR...`: report.md and report.html for result directories.

One directory: its report, written into it. Several: side by side (run A, B, ...), written
to the first or ``--out``. What the report holds: :mod:`duplexbench.report`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..report import build_report

__all__ = ["main"]


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
    print(paths.summary())
    return 0
