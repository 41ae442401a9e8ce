"""`python -m duplexbench reproduce SCENARIO --runs N`: do the findings survive a rerun?

N complete runs of the scenario back to back, each a separate ``python -m
duplexbench run`` (new harness, servers and load generators, as a user would
rerun; --transports, --duration, --warmup, --repeats, --engine are passed
through), then every finding of every run against the other runs, and the
coverage of the intervals the runs stated (duplexbench/reproduce).
``--judge DIR...`` judges runs that already exist instead of running.

Exit status: 0 the findings reproduce (no finding contradicted by 2 or more
other runs, >= 95 % held in all of them), 1 they do not, 2 bad arguments or
fewer than two complete runs to compare, 130 interrupted (what finished is
judged and written first).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import datetime
from pathlib import Path

from .. import procs
from ..console import Console, display_path
from ..reproduce.judge import (RunRecord, calibration, coverage, judge, ratio_calibration,
                                verdict)
from ..reproduce.output import render_markdown, render_text, tables, to_json, write_outputs
from ..reproduce.runs import RunOutcome, judged_outcomes, read_record, run_series

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_NOT_REPRODUCIBLE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m duplexbench reproduce",
        description="Run a scenario N times (each a separate `duplexbench run`) and check every "
                    "finding of every run against the others.",
        epilog="The table: reproduce.md / reproduce.json in --out. docs/DESIGN.md, "
               "'Confidence'.")
    p.add_argument("scenario", nargs="?", help="scenario file, e.g. scenarios/quick.toml")
    p.add_argument("--runs", type=int, default=5, metavar="N", help="complete runs (default 5)")
    p.add_argument("--out", type=Path, help="output directory (default results/reproduce-<time>)")
    p.add_argument("--lock", type=Path, metavar="FILE",
                   help="hold this file locked (flock) during each run, not between runs "
                        "(a shared machine's measurement lock)")
    p.add_argument("--judge", type=Path, nargs="+", metavar="RUN_DIR",
                   help="judge existing result directories instead of running (their findings "
                        "are computed again by this code)")
    p.add_argument("--transports", help="passed to each run")
    p.add_argument("--duration", help="passed to each run (seconds)")
    p.add_argument("--warmup", help="passed to each run (seconds)")
    p.add_argument("--repeats", help="passed to each run")
    p.add_argument("--engine", help="passed to each run")
    p.add_argument("--no-report", action="store_true",
                   help="runs skip report.md/html (findings are computed here instead)")
    p.add_argument("--quiet", action="store_true", help="only the table and the verdict")
    return p


def _passthrough(args: argparse.Namespace) -> list[str]:
    out = []
    for flag in ("transports", "duration", "warmup", "repeats", "engine"):
        value = getattr(args, flag)
        if value is not None:
            out += [f"--{flag}", str(value)]
    if args.no_report:
        out.append("--no-report")
    return out + ["--quiet"]  # each run's own progress goes to its log; ours is per run


def _records(outcomes: list[RunOutcome], console: Console,
             recompute: bool = False) -> list[RunRecord]:
    records = []
    for outcome in outcomes:
        if not outcome.complete:
            continue
        try:
            record = read_record(outcome.path, recompute)
        except Exception as exc:  # one unreadable run must not cost the others' table
            console.warn(f"{outcome.label}: findings could not be read: {exc}")
            continue
        records.append(RunRecord(outcome.label, str(outcome.path), outcome.exit_code, record))
    return records


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    console = Console(quiet=args.quiet)
    if not args.judge and not args.scenario:
        console.error("reproduce: give a SCENARIO to run, or --judge RUN_DIR ... to judge")
        return EXIT_USAGE
    if not args.judge and (args.runs < 2 or not Path(args.scenario).is_file()):
        console.error("reproduce: --runs must be >= 2 and SCENARIO an existing file")
        return EXIT_USAGE
    out = args.out or Path("results") / f"reproduce-{datetime.now():%Y%m%d-%H%M%S}"
    interrupted = False
    if args.judge:
        outcomes = judged_outcomes(args.judge)
        out.mkdir(parents=True, exist_ok=True)
    else:
        if out.exists() and any(out.glob("run-*/meta.json")):
            console.error(f"{out} already holds runs; choose another --out or judge them with "
                          f"--judge {out}/run-*")
            return EXIT_USAGE
        out.mkdir(parents=True, exist_ok=True)
        procs.install_signal_handlers()
        outcomes, interrupted = run_series(args.scenario, out, args.runs, _passthrough(args),
                                           lock=args.lock, say=console.info)
    # Judged later, runs are read with this code: their findings are computed again.
    records = _records(outcomes, console, recompute=bool(args.judge))
    command = "python -m duplexbench reproduce " + " ".join(shlex.quote(a) for a in argv)
    if len(records) < 2:
        console.error(f"reproduce: {len(records)} complete run(s): nothing to compare")
        return EXIT_INTERRUPTED if interrupted else EXIT_USAGE
    from ..report.intervals import LEVEL, Z

    judged = judge(records)
    cover, calib = coverage(records), calibration(records, Z, LEVEL)
    ratio_calib = ratio_calibration(records, Z, LEVEL)
    result = verdict(judged, len(records))
    built = tables(records, judged, cover, calib, ratio_calib)
    title = f"Reproducibility: {len(records)} runs" + (f" of {args.scenario}" if args.scenario
                                                       else "")
    md, js = write_outputs(out, render_markdown(title, command, built, result),
                           to_json(records, judged, cover, calib, result, command,
                                       ratio_calib))
    print(render_text(built, result))
    console.always(f"wrote {display_path(md)} and {display_path(js)}")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result["ok"] else EXIT_NOT_REPRODUCIBLE
