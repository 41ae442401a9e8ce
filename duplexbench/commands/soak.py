"""`python -m duplexbench soak RUN_DIR`: judge a soak run (`make soak` runs one, then this).

RSS slope and open files after the retention rings are full, lost and late:
:mod:`duplexbench.benchmarks.soak` has the rules.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

from ..benchmarks.soak import (
    FD_BOUND,
    MIN_JUDGED_S,
    RSS_SLOPE_BOUND_MIB_MIN,
    json_safe,
    judge_run,
    timeseries,
)
from ..measure.results import RunError, load_run

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duplexbench soak",
                                     description="Judge a soak run: RSS and open files after the "
                                                 "retention rings are full, lost and late.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--min-judged", type=float, default=MIN_JUDGED_S, metavar="S",
                        help=f"seconds that must be judged for a verdict (default {MIN_JUDGED_S:g})")
    args = parser.parse_args(argv)
    try:
        run = load_run(args.run_dir)
    except (RunError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verdicts = judge_run(run.meta, run.summary, run.load(), min_judged_s=args.min_judged)
    if not verdicts:
        print(f"error: {args.run_dir} has no measured points to judge", file=sys.stderr)
        return 2
    (args.run_dir / "soak.json").write_text(
        json.dumps({"bounds": {"rss_slope_mib_min": RSS_SLOPE_BOUND_MIB_MIN, "open_files": FD_BOUND,
                               "min_judged_s": args.min_judged},
                    "verdicts": [json_safe(asdict(v)) for v in verdicts]}, indent=2)
        + "\n", encoding="utf-8")
    timeseries(run.load()).to_csv(args.run_dir / "soak.csv", index=False)
    print(f"soak verdict (RSS slope bound {RSS_SLOPE_BOUND_MIB_MIN:g} MiB/min after the rings "
          f"are full, open files +{FD_BOUND}, lost = late = 0):")
    for v in verdicts:
        print(f"  {v.transport:<10} {v.verdict:<19} RSS {v.rss_start_mib:6.1f} -> "
              f"{v.rss_end_mib:6.1f} MiB ({v.rss_slope_mib_min:+.2f} MiB/min over "
              f"{v.judged_s:.0f} s from {v.judge_from_s:.0f} s), open files "
              f"{v.open_files_start:.0f} -> {v.open_files_end:.0f}, lost {v.lost:.0f}, "
              f"late {'n/a' if math.isnan(v.late) else f'{v.late:.0f}'}"
              + (f"  [{v.reasons}]" if v.reasons else ""))
    return 1 if any(v.verdict == "FAIL" for v in verdicts) else 0

