"""`python -m duplexbench compare BASELINE CURRENT`: the regression gate between two runs.

Exit status: 0 no regression, 1 a gated metric got worse (the last line names metric and
transport), 2 the inputs cannot be compared (incomplete run, another schema, no common load
point). How the verdicts are reached: :mod:`duplexbench.compare.runs`, docs/regression.md.
"""

from __future__ import annotations

import argparse
import sys

from ..compare.model import InputError
from ..compare.output import format_text, write_outputs
from ..compare.runs import compare_runs, resolve_run

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m duplexbench compare",
        description="Compare two runs metric by metric; exit 1 on a regression, 2 on bad input.",
        epilog="Thresholds and how the verdict is reached: docs/regression.md")
    p.add_argument("baseline", help="baseline run directory (e.g. results/baselines/ci)")
    p.add_argument("current", help="current run directory (e.g. results/ci-current)")
    p.add_argument("--markdown", metavar="FILE", help="also write a Markdown report (CI comment)")
    p.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="significance level of the raw-sample test (default 0.01)")
    p.add_argument("--min-change", type=float, metavar="PCT",
                   help="replace every metric's relative threshold by PCT %% (absolute floors stay)")
    p.add_argument("--normalize", action="store_true",
                   help="divide current latencies by the ratio of the runs' TCP echo calibration "
                        "(baseline and current from different machines)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="compare the finished points of incomplete runs")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): a status, not an exception
        return int(exc.code or 0)
    if not 0 < args.alpha < 1:
        print("duplexbench compare: error: --alpha must be between 0 and 1", file=sys.stderr)
        return 2
    if args.min_change is not None and args.min_change < 0:
        print("duplexbench compare: error: --min-change must be >= 0", file=sys.stderr)
        return 2
    try:
        base = resolve_run(args.baseline, args.allow_incomplete)
        cur = resolve_run(args.current, args.allow_incomplete)
        comp = compare_runs(base, cur, alpha=args.alpha, min_change=args.min_change,
                            normalize=args.normalize)
    except InputError as exc:
        print(f"duplexbench compare: error: {exc}", file=sys.stderr)
        return 2
    print(format_text(comp))
    write_outputs(comp, args.markdown, args.json)
    return 1 if comp.regressions else 0
