"""`python -m duplexbench capacity`: the highest delivery rate each transport sustains here.

"Sustains" means: every published message reached every subscriber (lost = 0)
and the p99 latency from the intended send time stayed under a bound (100 ms
by default). The search is the classic one for a capacity knee: step the
publish rate up geometrically with short points until a step fails, then
bisect (geometrically) between the last good and the first bad rate a few
times. Short points make this an estimate, not a certificate, which is why it
is a command people run on purpose and not a timed test; its points are
written like any run's (summary.csv, samples, load series), plus
``capacity.json`` with the answer per transport.

A step can also fail because the *load generator* ran out of core; the table
says so ("loadgen-bound"), since then the number is a floor for the server.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from . import external, procs
from .console import Column, Console, display_path
from .results import atomic_write_json, new_run_id
from .runner import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, LOADGEN_SATURATED_PCT,
                     PointResult, Session)
from .scenario import TRANSPORTS, LoadPoint, Scenario, ScenarioError, parse_scenario

__all__ = ["CapacityResult", "Verdict", "build_parser", "judge", "main", "next_rate"]


@dataclass(frozen=True)
class Verdict:
    """Did one step sustain its rate, and if not, why."""

    sustained: bool
    why: str  # "" when sustained
    loadgen_bound: bool = False


@dataclass(frozen=True)
class CapacityResult:
    """The answer for one transport."""

    transport: str
    clients: int
    #: Highest publish rate (messages/s) that was sustained; 0 when none was.
    rate_msgs_s: float
    #: Deliveries per second at that rate (publish rate x subscribers in fanout).
    delivery_msgs_s: float
    lat_p99_ms: float
    server_cpu_pct: float
    client_cpu_pct: float
    #: Lowest rate that failed (nan when the search hit --max-rate first).
    failed_rate_msgs_s: float
    why: str
    steps: int


def _num(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def judge(result: PointResult, p99_limit_ms: float) -> Verdict:
    """Apply the capacity criterion to one measured point."""
    row = result.row
    cpu = _num(row.get("client_cpu_pct"))
    bound = cpu is not None and cpu > LOADGEN_SATURATED_PCT
    if not result.measured:
        return Verdict(False, f"point failed: {result.reason.splitlines()[0] if result.reason else '?'}",
                       bound)
    if result.status not in ("ok", "lost"):
        return Verdict(False, f"client errors ({result.status})", bound)
    lost = _num(row.get("lost")) or 0
    if lost > 0:
        return Verdict(False, f"lost {lost:.0f}", bound)
    p99 = _num(row.get("lat_p99_ms"))
    if p99 is None:
        return Verdict(False, "no latency samples", bound)
    if p99 >= p99_limit_ms:
        return Verdict(False, f"p99 {p99:.1f} ms >= {p99_limit_ms:g} ms", bound)
    return Verdict(True, "", bound)


def next_rate(good: float | None, bad: float | None, start: float, factor: float,
              max_rate: float) -> float | None:
    """The next rate to try, or None when the search is over.

    Up by ``factor`` while nothing failed; down by ``factor`` while nothing
    passed; then the geometric midpoint (rates span decades, so the midpoint
    that halves the *ratio* is the fair one). Refinement is bounded by the
    caller's step count.
    """
    if bad is None:
        rate = start if good is None else good * factor
        return rate if rate <= max_rate else None
    if good is None:
        return bad / factor
    return math.sqrt(good * bad)


def _round_rate(rate: float) -> float:
    """Three significant digits: tidy labels, same search."""
    return float(f"{rate:.3g}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench capacity",
        description="Per transport, the highest delivery rate this machine sustains with "
                    "p99 under a bound and no lost message (fanout, short points).",
    )
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
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
    parser.add_argument("--engine", choices=("native", "locust"), default="native")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, help="results directory (default results/<run-id>)")
    parser.add_argument("--no-report", action="store_true", help="accepted for symmetry; "
                        "capacity writes no report")
    parser.add_argument("--quiet", action="store_true")
    external.add_arguments(parser)
    return parser


def capacity_scenario(args: argparse.Namespace) -> Scenario:
    """The workload: fanout of one topic to ``--clients`` subscribers, short points."""
    return parse_scenario({
        "name": "capacity",
        "description": f"capacity search: fanout to {args.clients} subscribers, "
                       f"p99 < {args.p99_ms:g} ms, lost = 0",
        "transports": [t.strip() for t in args.transports.split(",") if t.strip()],
        "pattern": "fanout",
        "clients": [args.clients],
        "rate": [args.start_rate],
        "payload_bytes": [args.payload],
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "drain_s": 1.0,
        # Past the knee, loss is what the search looks for, not a run failure.
        "expect_loss": True,
    })


def search(session: Session, transport: str, args: argparse.Namespace, counter: list[int],
           total_hint: int) -> CapacityResult:
    """Step up, then bisect, for one transport."""
    good: tuple[float, PointResult] | None = None
    bad: tuple[float, Verdict] | None = None
    refinements = steps = 0
    while steps < args.max_steps:
        rate = next_rate(good[0] if good else None, bad[0] if bad else None,
                         args.start_rate, args.factor, args.max_rate)
        if rate is None:
            break
        rate = _round_rate(rate)
        if (good and rate <= good[0]) or (bad and rate >= bad[0]):
            break  # the interval is as narrow as 3 significant digits allow
        if bad is not None and good is None and rate < args.start_rate / args.factor ** 3:
            break  # failing even at a small fraction of the start rate: report none
        point = LoadPoint(index=counter[0], repeat=0, transport=transport,
                          clients=args.clients, rate=rate, payload_bytes=args.payload)
        counter[0] += 1
        steps += 1
        result = session.run_point(point, counter[0], total_hint)
        verdict = judge(result, args.p99_ms)
        if verdict.sustained:
            good = (rate, result)
        else:
            bad = (rate, verdict)
            server_pct = _num(result.row.get("server_cpu_pct"))
            note = ""
            if verdict.loadgen_bound:
                note = " (load generator saturated)"
            elif result.measured and server_pct is not None and server_pct < LOADGEN_SATURATED_PCT:
                # Latency rose with no core saturated: the machine's other load, or a
                # concurrency limit (publisher pool, queue) rather than CPU.
                note = f" (server at {server_pct:.0f}% CPU: not CPU-bound)"
            session.console.info(f"  not sustained: {verdict.why}{note}")
        if bad is not None and good is not None:
            if refinements >= args.refine:
                break
            refinements += 1
    row = good[1].row if good else {}
    nan = float("nan")

    def value(key: str) -> float:
        number = _num(row.get(key))
        return nan if number is None else number

    why = "" if bad is None else bad[1].why
    if bad is not None and bad[1].loadgen_bound:
        why += "; loadgen-bound (a floor for the server)"
    if bad is None:
        why = f"reached --max-rate {args.max_rate:g} (or --max-steps)"
    return CapacityResult(
        transport=transport,
        clients=args.clients,
        rate_msgs_s=good[0] if good else 0.0,
        delivery_msgs_s=value("throughput_msgs_s") if good else 0.0,
        lat_p99_ms=value("lat_p99_ms"),
        server_cpu_pct=value("server_cpu_pct"),
        client_cpu_pct=value("client_cpu_pct"),
        failed_rate_msgs_s=bad[0] if bad else nan,
        why=why,
        steps=steps,
    )


CAPACITY_COLUMNS = (
    Column("transport", "transport", "{}"),
    Column("clients", "subscribers"),
    Column("rate_msgs_s", "publish/s", "{:,.4g}"),
    Column("delivery_msgs_s", "deliveries/s", "{:,.0f}"),
    Column("lat_p99_ms", "p99 ms", "{:.1f}"),
    Column("server_cpu_pct", "server CPU %", "{:.0f}"),
    Column("client_cpu_pct", "loadgen CPU %", "{:.0f}", red_above=LOADGEN_SATURATED_PCT),
    Column("failed_rate_msgs_s", "failed at/s", "{:,.4g}"),
    Column("why", "first failure", "{}"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    console = Console(quiet=args.quiet)
    try:
        scenario = capacity_scenario(args)
    except ScenarioError as exc:
        console.error(str(exc))
        return 2
    if args.start_rate <= 0 or args.factor <= 1 or args.clients <= 0:
        console.error("--start-rate and --clients must be positive and --factor above 1")
        return 2
    run_dir = args.out or Path("results") / new_run_id(scenario.name)
    try:  # an outside server (--server-url, probed first) or TLS
        setup = external.server_setup(args, scenario, run_dir, console)
    except external.SetupError as exc:
        console.error(str(exc))
        return 2
    procs.install_signal_handlers()
    session = Session(setup.scenario, run_dir, console=console, engine=args.engine,
                      workers=args.workers, command="capacity", argv=list(argv or []))
    setup.attach(session)
    found: list[CapacityResult] = []
    counter = [0]
    total_hint = 0  # adaptive: the number of steps is not known in advance
    try:
        session.start()
        session.writer.meta["capacity_criteria"] = {
            "p99_ms_below": args.p99_ms, "lost": 0, "pattern": "fanout",
            "clients": args.clients, "duration_s": args.duration, "warmup_s": args.warmup,
            "start_rate": args.start_rate, "factor": args.factor, "refine": args.refine,
        }
        for transport in scenario.transports:
            found.append(search(session, transport, args, counter, total_hint))
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
        "results": [asdict(r) for r in found],
    })
    nothing = all(r.rate_msgs_s == 0 for r in found)
    session.finish("failed" if nothing else "complete",
                   "no transport sustained even the lowest rate tried" if nothing else "")
    console.always("")
    console.table([asdict(r) for r in found], CAPACITY_COLUMNS, status=False,
                  title=f"capacity: fanout to {args.clients} subscribers, p99 < {args.p99_ms:g} ms, "
                        "lost = 0")
    console.summary_warnings()
    console.always(f"results: {display_path(run_dir)}")
    return EXIT_FAILED if nothing else EXIT_OK

