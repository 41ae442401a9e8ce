"""What both capacity searches share: bracketing a knee, and the answer for one transport.

A search steps a load value up geometrically until a step fails, bisects between the
last good and the first bad value, and runs the knee again (:func:`bracket`); the
answer (:class:`CapacityResult`) says what was sustained, where it failed and what
bounded it. The searches by rate (:mod:`.search`) and by subscribers (:mod:`.clients`)
differ only in the value they step and the point they run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..measure.validity import SATURATED_PCT
from ..runner.outcome import PointResult
from .judge import Verdict, num

__all__ = ["Bracket", "CapacityResult", "Step", "bracket", "next_rate", "result_from", "say"]


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


def say(console: Any, result: PointResult, verdict: Verdict) -> None:
    """One step's verdict on the console (the run's Console)."""
    if verdict.note:
        console.info(f"  {verdict.note}")
    if verdict.sustained:
        if verdict.loadgen_bound:
            console.info("  sustained, but the load generator was saturated "
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
    console.info(f"  not sustained: {verdict.why}{note}")
