"""`python -m duplexbench ab BASE`: the A/B regression gate (BASE's servers against this tree's).

The machinery is :mod:`duplexbench.compare.ab`; the verdicts :mod:`duplexbench.compare.runs`
(docs/regression.md). Exit status: 0 no regression, 1 regression, 2 cannot compare, 130
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import procs
from ..compare.ab import (
    DEFAULT_SCENARIO,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    ABError,
    failure_verdict,
    repo_root,
    run_ab,
)
from ..compare.model import InputError
from ..compare.output import format_text, write_outputs
from ..compare.runs import compare_runs, resolve_run
from ..console import Console, display_path
from ..machine.doctor import MissingParts, require
from ..measure.results import new_run_id
from ..scenario import Scenario, ScenarioError, load_scenario
from .options import prepare_scenario

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m duplexbench ab",
        description="A/B regression gate: run BASE's and the current tree's servers interleaved "
                    "on this machine with the current load generator; exit 1 on a regression.",
        epilog="How verdicts are reached: docs/regression.md")
    p.add_argument("base", help="commit-ish to compare against, e.g. origin/main, HEAD~1, a hash")
    p.add_argument("--scenario", default=DEFAULT_SCENARIO,
                   help=f"scenario (default {DEFAULT_SCENARIO})")
    p.add_argument("--repeats", type=int, metavar="N", help="repeats per side (default: scenario's)")
    p.add_argument("--transports", help="comma-separated subset, e.g. sse,websocket")
    p.add_argument("--duration", type=float, metavar="S", help="measurement seconds per point")
    p.add_argument("--out", type=Path, help="results directory (default results/ab-<id>)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    p.add_argument("--min-change", type=float, metavar="PCT",
                   help="replace every relative threshold by PCT %% (absolute floors stay)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _scenario(args: argparse.Namespace) -> Scenario:
    """The scenario file with the command line's overrides, exactly as `run` applies them."""
    return prepare_scenario(load_scenario(args.scenario), args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    console = Console(quiet=args.quiet)
    try:
        scenario = _scenario(args)
        require(scenario.points(), scenario=scenario)  # nginx, Chromium, ... before anything
    except (ScenarioError, MissingParts) as exc:
        console.error(str(exc))
        return EXIT_INPUT
    out = args.out or Path("results") / new_run_id("ab")
    if any((out / role / "meta.json").exists() for role in ("base", "current")):
        console.error(f"{out} already holds an A/B run; choose another --out or remove it")
        return EXIT_INPUT
    procs.install_signal_handlers()
    try:
        repo = repo_root(Path.cwd())
        a, b, stopped = run_ab(repo, args.base, scenario, out, console, argv)
    except ABError as exc:
        console.error(f"duplexbench ab: {exc}")
        return EXIT_INPUT
    except KeyboardInterrupt as exc:
        console.error(f"duplexbench ab: {exc or 'interrupted (Ctrl-C)'}")
        return EXIT_INTERRUPTED
    code, text = failure_verdict(a, b, stopped)
    if code != EXIT_OK:  # compare.md too: CI shows it in the job summary
        word = "FAIL" if code == EXIT_REGRESSION else "NO COMPARISON"
        (out / "compare.md").write_text(f"## duplexbench regression check: {word}\n\n`{text}`\n",
                                        encoding="utf-8")
        console.always(text)
        return code
    try:
        comp = compare_runs(resolve_run(out / "base"), resolve_run(out / "current"),
                            alpha=args.alpha, min_change=args.min_change, paired=True)
    except InputError as exc:
        console.error(f"duplexbench ab: cannot compare: {exc}")
        return EXIT_INPUT
    write_outputs(comp, out / "compare.md", out / "compare.json")
    console.always(f"A/B results: {display_path(out)} (compare.md, compare.json, base/, current/)")
    print(format_text(comp))  # last: its final line is the verdict CI logs are grepped for
    return EXIT_REGRESSION if comp.regressions else EXIT_OK

