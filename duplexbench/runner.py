"""`python -m duplexbench run SCENARIO.toml`: measure every load point of a scenario.

One load point at a time, never two transports at once (pyperf's rule: one
worker at a time): a fresh server process pinned to one core, a fresh load
generator pinned to the other, both sampled from *this* process at 20 Hz, then
both stopped and their output turned into one summary row.

The work is split so each part can grow alone:

- :mod:`duplexbench.target`: how the server is obtained (spawned per point, or
  an external URL);
- :mod:`duplexbench.paths`: what sits between subscribers and server (nothing,
  the emulated network);
- :mod:`duplexbench.generator`: the load generator's command line and spec;
- :mod:`duplexbench.point`: one point's processes, sampled and followed;
- :mod:`duplexbench.session`: the results directory, meta.json and rows;
- this module: the command line and the run loop.

What can go wrong is part of the design. A crashed server or load generator
makes a *failed* point with the reason (its last lines of output), and the run
goes on; three failures in a row stop it. Ctrl-C or SIGTERM stop the children,
keep the finished points and mark the run ``incomplete`` (exit 130). A run never
ends with a meta.json that says ``complete`` unless every point produced a row.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import external, infra, procs
from .console import Console, display_path
from .faults import loss_allowed
from .generator import loadgen_command, make_spec
from .limits import LimitError
from .outcome import PointResult
from .point import STUCK_GRACE_S
from .results import new_run_id
from .scenario import LoadPoint, Scenario, ScenarioError, load_scenario
from .session import LOADGEN_SATURATED_PCT, Session
from .target import SpawnedTarget

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LOST",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOADGEN_SATURATED_PCT",
    "MAX_CONSECUTIVE_FAILURES",
    "PointResult",
    "STUCK_GRACE_S",
    "Session",
    "build_parser",
    "loadgen_command",
    "main",
    "make_spec",
    "prepare_scenario",
    "run_session",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_LOST = 3  # messages lost where the scenario expects none
EXIT_USAGE = 2  # bad scenario or flags, or a point that cannot fit: nothing was run
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"

#: A run gives up after this many failed points in a row: the cause is not the
#: load (a missing module, a broken build) and more attempts only add noise.
MAX_CONSECUTIVE_FAILURES = 3


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
    external.add_arguments(parser)
    return parser


def prepare_scenario(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """Apply command-line overrides, validated exactly like the file."""
    changes: dict[str, Any] = {}
    if args.transports:
        changes["transports"] = [t.strip() for t in args.transports.split(",") if t.strip()]
    if args.duration is not None:
        changes["duration_s"] = args.duration
    if getattr(args, "warmup", None) is not None:  # `ab` has no --warmup
        changes["warmup_s"] = args.warmup
    if args.repeats is not None:
        changes["repeats"] = args.repeats
    return scenario.with_overrides(**changes) if changes else scenario


def _workers(args: argparse.Namespace, scenario: Scenario) -> int:
    if args.workers is not None:
        return max(1, args.workers)
    try:
        return max(1, int(scenario.engine_options.get("workers", 1)))
    except (TypeError, ValueError):
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    console = Console(quiet=args.quiet)
    try:
        scenario = prepare_scenario(load_scenario(args.scenario), args)
    except ScenarioError as exc:
        console.error(str(exc))
        return 2
    run_dir = args.out or Path("results") / new_run_id(scenario.name)
    if (run_dir / "meta.json").exists():
        console.error(f"{run_dir} already holds a run; choose another --out or remove it")
        return 2
    try:  # an outside server (--server-url, probed first) or TLS
        setup = external.server_setup(args, scenario, run_dir, console)
    except external.SetupError as exc:
        console.error(str(exc))
        return 2
    scenario = setup.scenario
    target = None
    if args.server_src is not None:
        if not (args.server_src / "servers" / "__main__.py").is_file():
            console.error(f"--server-src {args.server_src}: no servers/__main__.py there")
            return 2
        if args.server_url:
            console.error("--server-src runs our servers from another tree; --server-url measures "
                          "a running one: choose one")
            return 2
        src = str(args.server_src.resolve())
        if isinstance(setup.target, external.TLSSpawnedTarget):  # TLS points of that tree
            setup.target.base.src = src
        else:
            target = SpawnedTarget(args=scenario.server.to_args(), cpu=procs.plan_affinity().server,
                                   src=src)
    procs.install_signal_handlers()
    session = Session(scenario, run_dir, console=console, engine=args.engine,
                      workers=_workers(args, scenario), baseline=args.baseline,
                      command="run", argv=argv, target=target,
                      loadgen_procs=args.loadgen_procs or scenario.engine_options.get("loadgen_procs"))
    setup.attach(session)
    return run_session(session, scenario.points(), report=not args.no_report)


def run_session(session: Session, points: Sequence[LoadPoint], *, report: bool = True) -> int:
    """Run ``points`` in ``session``; final table, warnings, status, exit code."""
    console = session.console
    status, reason, code = "complete", "", EXIT_OK
    try:  # a point that cannot fit on this machine is refused before anything starts
        session.check_limits(points)
    except LimitError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    try:
        session.start()
        failures_in_a_row = 0
        for number, point in enumerate(points, 1):
            result = session.run_point(point, number, len(points))
            failures_in_a_row = 0 if result.measured else failures_in_a_row + 1
            if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                skipped = len(points) - number
                reason = (f"stopped after {failures_in_a_row} failed points in a row "
                          f"({skipped} not run); last: {result.reason}")
                break
    except KeyboardInterrupt as exc:
        with procs.shielded(redeliver=False):
            what = str(exc) or "interrupted (Ctrl-C)"
            done = len(session.results)
            reason = f"{what} after {done} of {len(points)} points"
            console.error(reason)
            if session.writer is not None:
                session.finish("incomplete", reason)
                console.always(f"results (incomplete): {display_path(session.run_dir)}")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug in the harness: say so, and leave a run marked failed
        with procs.shielded(redeliver=False):
            traceback.print_exc()
            reason = f"internal error: {type(exc).__name__}: {exc}"
            console.error(reason)
            if session.writer is not None and not session.finished:
                session.finish("failed", reason)
        return EXIT_FAILED
    failed = [r for r in session.results if not r.ok]
    if failed or reason:
        status, code = "failed", EXIT_FAILED
        reason = reason or (f"{len(failed)} of {len(points)} points failed "
                            f"({failed[0].status}); first: {failed[0].point.label}: "
                            f"{failed[0].reason}")
    # A SIGKILL fault may lose what was in flight (counted in the row, not a failure).
    lost = [r for r in session.results if r.ok and r.lost > 0 and not loss_allowed(r.point.fault)]
    if lost and not session.scenario.expect_loss and code == EXIT_OK:
        code = EXIT_LOST
        reason = (f"{sum(r.lost for r in lost)} message(s) lost in {len(lost)} point(s); "
                  "the scenario expects none")
        session.warn(reason)
    with procs.shielded(redeliver=False):  # a signal now would leave meta.json "running"
        session.finish(status, reason)
    rows = [r.row for r in session.results]
    rows, columns = infra.console_table(rows, external.table_columns(rows))
    console.always("")
    console.table(rows, columns=columns, title=f"{session.scenario.name}: {session.run_id}",
                  caption="latency from the intended send time (p50/p99/max; coordinated "
                          "omission corrected) and the actual send time (p99 sent); "
                          "CPU = % of one core while measuring; validity: only ok and "
                          "server-saturated rows can compare transports (docs/DESIGN.md)")
    if report and any(r.ok for r in session.results):
        _write_report(session)
    console.summary_warnings()
    if code == EXIT_FAILED:
        console.error(reason)
    elif code == EXIT_LOST:
        console.always(f"LOST MESSAGES: {reason} (exit {EXIT_LOST})", style="bold red")
    console.always(f"results: {display_path(session.run_dir)}{_latest_note(session)}")
    return code


def _write_report(session: Session) -> None:
    try:
        module = importlib.import_module("duplexbench.report")
        result = module.main([str(session.run_dir)])
        if result:
            session.console.warn(f"the report exited with status {result}; "
                                 f"results are intact in {display_path(session.run_dir)}")
    except Exception as exc:  # a report failure must not lose results
        session.console.warn(f"could not write the report ({type(exc).__name__}: {exc}); "
                             f"results are intact in {display_path(session.run_dir)}")
    except KeyboardInterrupt:  # the run itself is finished and saved; only the report stops
        session.console.warn("report interrupted; the results are complete: "
                             f"python -m duplexbench report {display_path(session.run_dir)}")


def _latest_note(session: Session) -> str:
    link = session.run_dir.parent / "latest"
    if session.baseline or not link.is_symlink():
        return ""
    try:
        target = os.readlink(link)
    except OSError:
        return ""
    return f" (latest -> {target})" if target == session.run_dir.name else ""
