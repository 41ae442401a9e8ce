"""`python -m duplexbench run SCENARIO.toml`: measure every load point of a scenario.

Per load point a fresh server process pinned to one core, a fresh load
generator pinned to the other, both sampled from the harness at 20 Hz, then both
stopped and their output turned into one summary row. This module is the
command line; the machinery is :mod:`duplexbench.runner` (the session, one
point, the run loop) with the run's point extensions (:mod:`duplexbench.extensions`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import procs
from ..console import Console
from ..extensions import point_extensions
from ..measure.results import new_run_id
from ..runner import outside
from ..runner.loop import EXIT_USAGE, run_session
from ..runner.session import Session
from ..runner.target import SpawnedTarget
from ..scenario import Scenario, ScenarioError, load_scenario
from ..scenario.http import check_engine
from .options import prepare_scenario

__all__ = ["build_parser", "main", "write_report"]


# ---------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench run",
        description="Run a scenario: per load point a fresh server and load generator, "
                    "pinned to their own cores; results in results/<run-id>/.",
    )
    parser.add_argument("scenario", help="scenario file, e.g. scenarios/quick.toml")
    parser.add_argument("--out", type=Path, help="results directory (default results/<run-id>)")
    parser.add_argument("--transports", help="comma-separated subset, e.g. sse,websocket")
    parser.add_argument("--duration", type=float, metavar="S", help="measurement seconds per point")
    parser.add_argument("--warmup", type=float, metavar="S", help="warm-up seconds per point")
    parser.add_argument("--repeats", type=int, metavar="N", help="repeat every point N times")
    parser.add_argument("--engine", choices=("native", "locust", "browser"), default="native",
                        help="load generator (default native asyncio; browser = headless "
                             "Chromium; a scenario's own engine = [...] sweep wins)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="Locust worker processes (engine locust)")
    parser.add_argument("--loadgen-procs", type=int, default=None, metavar="N",
                        help="subscriber processes of the native load generator (default: one "
                             "per allowed core other than the server's, at least 1)")
    parser.add_argument("--server-src", type=Path, metavar="DIR",
                        help="run the servers of another source tree (e.g. a checkout of an older "
                             "commit) with this interpreter; `duplexbench ab` does this for A/B runs")
    parser.add_argument("--no-report", action="store_true", help="skip report.md / report.html")
    parser.add_argument("--baseline", action="store_true",
                        help="mark the run as a baseline (meta.json baseline=true; no latest link)")
    parser.add_argument("--quiet", action="store_true", help="no progress output; table only")
    outside.add_arguments(parser)
    return parser


def _workers(args: argparse.Namespace, scenario: Scenario) -> int:
    if args.workers is not None:
        return max(1, args.workers)
    try:
        return max(1, int(scenario.engine_options.get("workers", 1)))
    except (TypeError, ValueError):
        return 1


def write_report(run_dir: Path) -> str:
    """The run's report (report.md, report.html); what to print."""
    from ..report import (
        build_report,  # late: matplotlib's import is for runs that report
    )

    return build_report([run_dir]).summary()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    console = Console(quiet=args.quiet)
    try:
        scenario = prepare_scenario(load_scenario(args.scenario, outside=bool(args.server_url)),
                                    args)
        scenario.check_engine(args.engine)  # e.g. Locust or a browser cannot run tcp
        check_engine(scenario, args.engine)  # Locust / a browser over HTTP/2: refused here
    except ScenarioError as exc:
        console.error(str(exc))
        return 2
    run_dir = args.out or Path("results") / new_run_id(scenario.name)
    if (run_dir / "meta.json").exists():
        console.error(f"{run_dir} already holds a run; choose another --out or remove it")
        return 2
    try:  # an outside server (--server-url, probed first) or TLS
        setup = outside.server_setup(args, scenario, run_dir, console)
    except outside.SetupError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    scenario, target = setup.scenario, setup.target
    if args.server_src is not None:
        if not (args.server_src / "servers" / "__main__.py").is_file():
            console.error(f"--server-src {args.server_src}: no servers/__main__.py there")
            return EXIT_USAGE
        if args.server_url:
            console.error("--server-src runs our servers from another tree; --server-url measures "
                          "a running one: choose one")
            return EXIT_USAGE
        target = SpawnedTarget(args=scenario.server.to_args(), cpu=procs.plan_affinity().server,
                               src=str(args.server_src.resolve()))
    procs.install_signal_handlers()
    session = Session(scenario, run_dir, console=console, engine=args.engine,
                      workers=_workers(args, scenario), baseline=args.baseline,
                      command="run", argv=argv, target=target,
                      loadgen_procs=args.loadgen_procs or scenario.engine_options.get("loadgen_procs"),
                      extensions=point_extensions(scenario, engine=args.engine,
                                                  server=setup.extension))
    return run_session(session, scenario.points(), report=None if args.no_report else write_report)
