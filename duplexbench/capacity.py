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

Every transport's answer says what bounded it (``bound``: ``server``,
``loadgen``, ``both`` or ``none``, from the CPU shares of the first failing step
and duplexbench/validity.py's threshold; when both cores were saturated but the
subscribers got every message promptly after its send, the server, see
:func:`judge`), with the server's and the load
generator's CPU at the first failing step too; a sustained step whose load
generator was saturated is marked (its rate is a floor for the server). The
steps at the knee (last sustained, first failing) are repeated (``--knee-repeats``):
a rate counts as sustained only if every run of it was.

``--by subscribers`` is the other way (the websocket-shootout method, see
:mod:`duplexbench.capacity_clients`): a fixed publish rate, subscribers doubled
from 1,000 until p95 exceeds a bound (500 ms) or a message is lost, or the
machine's limits (open files, ports) stop the search.
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
from .limits import LimitError
from .results import atomic_write_json, new_run_id
from .runner import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PointResult, Session
from .capacity_judge import BOUNDS, Verdict, bound_of, judge, num, publisher_realtime
from .scenario import TRANSPORTS, LoadPoint, Scenario, ScenarioError, parse_scenario
from .validity import SATURATED_PCT

LOADGEN_SATURATED_PCT = SATURATED_PCT

# The criterion (BOUNDS, Verdict, bound_of, judge, publisher_realtime) lives in
# capacity_judge and is re-exported: callers and tests know it as capacity.judge.
__all__ = ["BOUNDS", "CapacityResult", "Verdict", "bound_of", "build_parser", "judge", "main",
           "next_rate", "publisher_realtime"]

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
    #: What bounded the transport at its first failing step (see BOUNDS).
    bound: str = "none"
    failed_server_cpu_pct: float = float("nan")
    failed_client_cpu_pct: float = float("nan")
    #: The reported sustained step saturated the load generator: a floor for the server.
    sustained_loadgen_saturated: bool = False
    #: Runs of the knee steps (last sustained, first failing), repeats included.
    knee_runs: int = 0
    #: Subscriber search (--by subscribers): what the step varied.
    by: str = "rate"
    #: --by subscribers: the lowest subscriber count that failed (nan when none did).
    failed_clients: float = float("nan")


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
    external.add_arguments(parser)
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


@dataclass
class Step:
    """One measured step of a search."""

    value: float
    result: PointResult
    verdict: Verdict


@dataclass
class Bracket:
    """Where a search ended: the highest sustained and the lowest failing step."""

    good: Step | None = None
    bad: Step | None = None
    steps: int = 0
    history: list = None  # every Step, in order

    def __post_init__(self) -> None:
        self.history = [] if self.history is None else self.history


def bracket(run_step, *, start: float, factor: float, max_value: float, refine: int,
            max_steps: int, knee_repeats: int, rounder=lambda v: v,
            min_value: float = 0.0) -> Bracket:
    """Step up geometrically, bisect after the first failure, then repeat the knee.

    ``run_step(value) -> (PointResult, Verdict)`` measures one step (``None``
    when the value cannot be run at all, e.g. past a machine limit: treated as
    the end of the search). A rate is sustained only if every run of it was.
    """
    out = Bracket()
    refinements = 0
    while out.steps < max_steps:
        value = next_rate(out.good.value if out.good else None,
                          out.bad.value if out.bad else None, start, factor, max_value)
        if value is None:
            break
        value = rounder(value)
        if (out.good and value <= out.good.value) or (out.bad and value >= out.bad.value):
            break  # the interval is as narrow as rounding allows
        if out.bad is not None and out.good is None and value < min_value:
            break  # failing even at a small fraction of the start: report none
        measured = run_step(value)
        if measured is None:
            break
        out.steps += 1
        step = Step(value, *measured)
        out.history.append(step)
        if step.verdict.sustained:
            out.good = step
        else:
            out.bad = step
        if out.bad is not None and out.good is not None:
            if refinements >= refine:
                break
            refinements += 1
    # The knee again: one lucky step is not a capacity (only where there is a knee).
    for _ in range(knee_repeats if out.good is not None and out.bad is not None else 0):
        if out.good is not None:
            measured = run_step(out.good.value)
            if measured is not None:
                out.steps += 1
                again = Step(out.good.value, *measured)
                out.history.append(again)
                if not again.verdict.sustained:
                    out.bad = again  # failed on a repeat: not sustained after all
                    lower = [s for s in out.history if s.verdict.sustained
                             and s.value < again.value]
                    out.good = max(lower, key=lambda s: s.value) if lower else None
        if out.bad is not None and (out.good is None or out.bad.value > out.good.value):
            measured = run_step(out.bad.value)
            if measured is not None:
                out.steps += 1
                out.history.append(Step(out.bad.value, *measured))
    return out


def result_from(transport: str, clients: int, found: Bracket, *, rate_of, why_none: str,
                by: str = "rate") -> CapacityResult:
    """The CapacityResult of a finished search."""
    nan = float("nan")
    row = found.good.result.row if found.good else {}

    def value(key: str) -> float:
        number = num(row.get(key))
        return nan if number is None else number

    bad = found.bad
    why = why_none if bad is None else bad.verdict.why
    if bad is not None and bad.verdict.loadgen_bound:
        why += "; loadgen-bound (a floor for the server)"
    if bad is not None and bad.verdict.note:
        why += f"; {bad.verdict.note}"
    unstable = [s for s in found.history if bad is not None and s.value == bad.value
                and s.verdict.sustained]
    if unstable:
        why += f"; {bad.value:g} was sustained on one run (knee not sharp)"
    knee = {found.good.value if found.good else None, bad.value if bad else None}
    good_row_sat = bool(found.good and found.good.verdict.loadgen_bound)
    return CapacityResult(
        transport=transport,
        clients=int(found.good.result.point.clients) if found.good and by == "subscribers"
        else clients,
        rate_msgs_s=rate_of(found.good) if found.good else 0.0,
        delivery_msgs_s=value("throughput_msgs_s") if found.good else 0.0,
        lat_p99_ms=value("lat_p99_ms"),
        server_cpu_pct=value("server_cpu_pct"),
        client_cpu_pct=value("client_cpu_pct"),
        failed_rate_msgs_s=rate_of(bad) if bad and by == "rate" else nan,
        failed_clients=bad.value if bad and by == "subscribers" else nan,
        why=why,
        steps=found.steps,
        bound=bad.verdict.bound if bad else ("loadgen" if good_row_sat else "none"),
        failed_server_cpu_pct=num(bad.result.row.get("server_cpu_pct")) or nan if bad else nan,
        failed_client_cpu_pct=num(bad.result.row.get("client_cpu_pct")) or nan if bad else nan,
        sustained_loadgen_saturated=good_row_sat,
        knee_runs=sum(1 for s in found.history if s.value in knee),
        by=by,
    )


def search(session: Session, transport: str, args: argparse.Namespace, counter: list[int],
           total_hint: int) -> CapacityResult:
    """Step the publish rate up, then bisect, then repeat the knee, for one transport."""

    def run_step(rate: float):
        point = LoadPoint(index=counter[0], repeat=0, transport=transport,
                          clients=args.clients, rate=rate, payload_bytes=args.payload)
        counter[0] += 1
        result = session.run_point(point, counter[0], total_hint)
        verdict = judge(result, args.p99_ms,
                        publisher_realtime=publisher_realtime(session.run_dir, point))
        _say(session, result, verdict)
        return result, verdict

    found = bracket(run_step, start=args.start_rate, factor=args.factor, max_value=args.max_rate,
                    refine=args.refine, max_steps=args.max_steps,
                    knee_repeats=getattr(args, "knee_repeats", 0), rounder=_round_rate,
                    min_value=args.start_rate / args.factor ** 3)
    return result_from(transport, args.clients, found, rate_of=lambda step: step.value,
                       why_none=f"reached --max-rate {args.max_rate:g} (or --max-steps)")


def _say(session: Session, result: PointResult, verdict: Verdict) -> None:
    if verdict.note:
        session.console.info(f"  {verdict.note}")
    if verdict.sustained:
        if verdict.loadgen_bound:
            session.console.info("  sustained, but the load generator was saturated "
                                 "(this rate is a floor for the server)")
        return
    server_pct = num(result.row.get("server_cpu_pct"))
    note = ""
    if verdict.loadgen_bound:
        note = " (load generator saturated)"
    elif result.measured and server_pct is not None and server_pct < SATURATED_PCT:
        # Latency rose with no core saturated: the machine's other load, or a
        # concurrency limit (publisher pool, queue) rather than CPU.
        note = f" (server at {server_pct:.0f}% CPU: not CPU-bound)"
    session.console.info(f"  not sustained: {verdict.why}{note}")


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
        setup = external.server_setup(args, scenario, run_dir, console)
    except external.SetupError as exc:
        console.error(str(exc))
        return 2
    procs.install_signal_handlers()
    session = Session(setup.scenario, run_dir, console=console, engine=args.engine,
                      workers=args.workers, command="capacity", argv=list(argv or []),
                      loadgen_procs=args.loadgen_procs)
    setup.attach(session)
    by_clients = args.by == "subscribers"
    if by_clients:
        from .capacity_clients import search_clients as searcher
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

