"""`python -m duplexbench capacity`: the highest load each transport sustains on this machine.

By rate (default, :mod:`duplexbench.capacity.search`): the highest publish rate to
``--clients`` subscribers with p99 under a bound and no lost message. By
subscribers (``--by subscribers``, :mod:`duplexbench.capacity.clients`): the most
subscribers at a fixed rate with p95 under a bound. Both write a run directory
like ``run`` does, plus ``capacity.json``; :mod:`duplexbench.capacity.judge` says
what bounded each answer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from .. import procs
from ..capacity.bracket import CapacityResult
from ..capacity.clients import search_clients
from ..capacity.search import search
from ..console import Column, Console, display_path
from ..extensions import point_extensions
from ..machine.doctor import MissingParts
from ..machine.limits import LimitError
from ..measure.results import atomic_write_json, new_run_id
from ..measure.validity import SATURATED_PCT
from ..runner import outside
from ..runner.loop import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ..runner.session import Session
from ..scenario import WEB_TRANSPORTS, Scenario, ScenarioError, parse_scenario

__all__ = ["CAPACITY_COLUMNS", "build_parser", "capacity_scenario", "main"]

LOADGEN_SATURATED_PCT = SATURATED_PCT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench capacity",
        description="Per transport, the highest delivery rate this machine sustains with "
                    "p99 under a bound and no lost message (fanout, short points).",
    )
    parser.add_argument("--transports", default=",".join(WEB_TRANSPORTS),
                        help="comma-separated (default all)")
    parser.add_argument("--clients", type=int, default=50, help="subscribers (default 50)")
    parser.add_argument("--payload", type=int, default=64, help="payload bytes (default 64)")
    parser.add_argument("--duration", type=float, default=3.0, metavar="S",
                        help="measured seconds per step (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, metavar="S",
                        help="warm-up seconds per step (default 1)")
    parser.add_argument("--p99-ms", type=float, default=100.0, help="latency bound (default 100)")
    parser.add_argument("--start-rate", type=float, default=50.0,
                        help="first publish rate, messages/s (default 50)")
    parser.add_argument("--factor", type=float, default=2.0, help="step-up factor (default 2)")
    parser.add_argument("--max-rate", type=float, default=20000.0,
                        help="stop stepping up at this publish rate (default 20000)")
    parser.add_argument("--refine", type=int, default=2,
                        help="bisection steps after the first failure (default 2)")
    parser.add_argument("--max-steps", type=int, default=14,
                        help="hard cap on points per transport (default 14)")
    parser.add_argument("--knee-repeats", type=int, default=1,
                        help="runs again of the last sustained and first failing step (default 1)")
    parser.add_argument("--by", choices=("rate", "subscribers"), default="rate",
                        help="step the publish rate at fixed --clients (default), or the "
                             "subscribers at a fixed --rate (websocket-shootout method)")
    parser.add_argument("--rate", type=float, default=2.0,
                        help="--by subscribers: publish rate, messages/s (default 2)")
    parser.add_argument("--start-clients", type=int, default=1000,
                        help="--by subscribers: first subscriber count (default 1000)")
    parser.add_argument("--max-clients", type=int, default=1_000_000,
                        help="--by subscribers: stop stepping up here (the machine's limits "
                             "stop it first)")
    parser.add_argument("--p95-ms", type=float, default=500.0,
                        help="--by subscribers: latency bound on p95 (default 500)")
    parser.add_argument("--loadgen-procs", type=int, default=None, metavar="N",
                        help="load-generator processes (default: one per free core)")
    parser.add_argument("--engine", choices=("native", "locust"), default="native")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, help="results directory (default results/<run-id>)")
    parser.add_argument("--no-report", action="store_true", help="accepted for symmetry; "
                        "capacity writes no report")
    parser.add_argument("--quiet", action="store_true")
    outside.add_arguments(parser)
    return parser


def capacity_scenario(args: argparse.Namespace) -> Scenario:
    """The workload: fanout of one topic to ``--clients`` subscribers, short points."""
    by_clients = args.by == "subscribers"
    return parse_scenario({
        "name": "capacity-subscribers" if by_clients else "capacity",
        "description": (f"capacity search: fanout at {args.rate:g} msg/s, subscribers from "
                        f"{args.start_clients}, p95 < {args.p95_ms:g} ms, lost = 0")
        if by_clients else (f"capacity search: fanout to {args.clients} subscribers, "
                            f"p99 < {args.p99_ms:g} ms, lost = 0"),
        "transports": [t.strip() for t in args.transports.split(",") if t.strip()],
        "pattern": "fanout",
        "clients": [args.start_clients if by_clients else args.clients],
        "rate": [args.rate if by_clients else args.start_rate],
        "payload_bytes": [args.payload],
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "drain_s": 1.0,
        # Past the knee, loss is what the search looks for, not a run failure.
        "expect_loss": True,
    })


CAPACITY_COLUMNS = (
    Column("transport", "transport", "{}"),
    Column("clients", "subscribers"),
    Column("rate_msgs_s", "publish/s", "{:,.4g}"),
    Column("delivery_msgs_s", "deliveries/s", "{:,.0f}"),
    Column("lat_p99_ms", "p99 ms", "{:.1f}"),
    Column("server_cpu_pct", "server CPU %", "{:.0f}"),
    Column("client_cpu_pct", "loadgen CPU %", "{:.0f}", red_above=LOADGEN_SATURATED_PCT),
    Column("failed_rate_msgs_s", "failed at/s", "{:,.4g}"),
    Column("bound", "bound", "{}"),
    Column("why", "first failure", "{}"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    console = Console(quiet=args.quiet)
    try:
        scenario = capacity_scenario(args)
        scenario.check_engine(args.engine)  # Locust cannot run tcp
    except ScenarioError as exc:
        console.error(str(exc))
        return 2
    if args.start_rate <= 0 or args.factor <= 1 or args.clients <= 0 or args.start_clients <= 0 \
            or args.knee_repeats < 0:
        console.error("--start-rate, --clients and --start-clients must be positive, "
                      "--factor above 1 and --knee-repeats >= 0")
        return 2
    run_dir = args.out or Path("results") / new_run_id(scenario.name)
    try:  # an outside server (--server-url, probed first) or TLS
        setup = outside.server_setup(args, scenario, run_dir, console)
    except outside.SetupError as exc:
        console.error(str(exc))
        return 2
    procs.install_signal_handlers()
    session = Session(setup.scenario, run_dir, console=console, engine=args.engine,
                      workers=args.workers, command="capacity", argv=list(argv or []),
                      target=setup.target, loadgen_procs=args.loadgen_procs,
                      extensions=point_extensions(setup.scenario, engine=args.engine,
                                                  server=setup.extension))
    try:  # a part the points need (Chromium for --engine browser, ...) before anything
        session.check_parts(scenario.points())
    except MissingParts as exc:
        console.error(str(exc))
        return EXIT_USAGE
    by_clients = args.by == "subscribers"
    if by_clients:
        searcher = search_clients
    else:
        searcher = search
        try:  # a rate search runs one subscriber count: refuse it now if it cannot fit
            session.check_limits(scenario.points())
        except LimitError as exc:
            console.error(str(exc))
            return EXIT_USAGE
    found: list[CapacityResult] = []
    counter = [0]
    total_hint = 0  # adaptive: the number of steps is not known in advance
    try:
        session.start()
        criteria = {
            "by": args.by, "lost": 0, "pattern": "fanout", "duration_s": args.duration,
            "warmup_s": args.warmup, "factor": args.factor, "refine": args.refine,
            "knee_repeats": args.knee_repeats, "saturated_pct": SATURATED_PCT,
        }
        if by_clients:
            criteria.update(p95_ms_below=args.p95_ms, rate_msgs_s=args.rate,
                            start_clients=args.start_clients)
        else:
            criteria.update(p99_ms_below=args.p99_ms, clients=args.clients,
                            start_rate=args.start_rate)
        session.writer.meta["capacity_criteria"] = criteria
        for transport in scenario.transports:
            found.append(searcher(session, transport, args, counter, total_hint))
    except KeyboardInterrupt as exc:
        with procs.shielded(redeliver=False):
            reason = f"{exc or 'interrupted (Ctrl-C)'} during the capacity search"
            console.error(reason)
            if session.writer is not None:
                session.writer.meta["capacity"] = [asdict(r) for r in found]
                session.finish("incomplete", reason)
                console.always(f"results (incomplete): {display_path(run_dir)}")
        return EXIT_INTERRUPTED
    session.writer.meta["capacity"] = [asdict(r) for r in found]
    atomic_write_json(run_dir / "capacity.json", {
        "criteria": session.writer.meta["capacity_criteria"],
        "bound": {r.transport: r.bound for r in found},
        "results": [asdict(r) for r in found],
    })
    nothing = all(r.rate_msgs_s == 0 for r in found)
    session.finish("failed" if nothing else "complete",
                   "no transport sustained even the lowest rate tried" if nothing else "")
    console.always("")
    title = (f"capacity by subscribers: fanout at {args.rate:g} msg/s, p95 < {args.p95_ms:g} ms, "
             "lost = 0" if by_clients else
             f"capacity: fanout to {args.clients} subscribers, p99 < {args.p99_ms:g} ms, lost = 0")
    columns = [Column("failed_clients", "failed at (subscribers)") if c.key == "failed_rate_msgs_s"
               else c for c in CAPACITY_COLUMNS] if by_clients else CAPACITY_COLUMNS
    console.table([asdict(r) for r in found], columns, status=False, title=title)
    console.summary_warnings()
    console.always(f"results: {display_path(run_dir)}")
    return EXIT_FAILED if nothing else EXIT_OK

