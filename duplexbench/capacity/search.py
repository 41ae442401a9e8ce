"""The capacity search by rate: the highest delivery rate each transport sustains here.

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
and duplexbench/measure/validity.py's threshold; when both cores were saturated but the
subscribers got every message promptly after its send, the server, see
:func:`judge`), with the server's and the load
generator's CPU at the first failing step too; a sustained step whose load
generator was saturated is marked (its rate is a floor for the server). The
steps at the knee (last sustained, first failing) are repeated (``--knee-repeats``):
a rate counts as sustained only if every run of it was.

``--by subscribers`` is the other way (the websocket-shootout method,
:mod:`duplexbench.capacity.clients`, which shares this module's search): a fixed publish rate, subscribers doubled
from 1,000 until p95 exceeds a bound (500 ms) or a message is lost, or the
machine's limits (open files, ports) stop the search.
"""

from __future__ import annotations

import argparse

from ..runner.session import Session
from ..scenario import LoadPoint
from .bracket import CapacityResult, bracket, result_from, say
from .judge import judge, publisher_realtime

__all__ = ["search"]

def _round_rate(rate: float) -> float:
    """Three significant digits: tidy labels, same search."""
    return float(f"{rate:.3g}")


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
        say(session.console, result, verdict)
        return result, verdict

    found = bracket(run_step, start=args.start_rate, factor=args.factor, max_value=args.max_rate,
                    refine=args.refine, max_steps=args.max_steps,
                    knee_repeats=getattr(args, "knee_repeats", 0), rounder=_round_rate,
                    min_value=args.start_rate / args.factor ** 3)
    return result_from(transport, args.clients, found, rate_of=lambda step: step.value,
                       why_none=f"reached --max-rate {args.max_rate:g} (or --max-steps)")
