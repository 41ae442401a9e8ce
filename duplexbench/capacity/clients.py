"""Capacity by subscribers (the websocket-shootout method): how many can one server hold?

At a fixed publish rate (fanout of one topic), the subscriber count doubles
from ``--start-clients`` (1,000) until the p95 latency from the intended send
time exceeds ``--p95-ms`` (500 ms by default, as the shootout's "broadcast
within 500 ms") or a message is lost, then bisects between the last good and
the first bad count; the knee is repeated like the rate search's. Before the
first step the largest count the machine can hold (open files, ephemeral ports:
duplexbench/machine/limits.py) is found from the limit checks alone; a doubling past it
becomes a step to exactly that ceiling, and holding it ends the search with the
limit as the reason (so the result is "at least N", N as high as this machine
allows, not the last power of two below it).

p95 is computed here from the point's own samples (samples/<point>.parquet),
nearest rank like every other percentile (metrics.nearest_rank).
"""

from __future__ import annotations

import argparse
import math

import pandas as pd

from ..machine.limits import LimitError
from ..measure.metrics import nearest_rank
from ..measure.results import SAMPLES_DIR, point_file_name
from ..runner.outcome import PointResult
from ..runner.session import Session
from ..scenario import LoadPoint
from .bracket import CapacityResult, bracket, result_from, say
from .judge import judge, publisher_realtime

__all__ = ["machine_ceiling", "p95_of", "search_clients"]


def p95_of(session: Session, result: PointResult) -> float | None:
    """p95 latency (ms) of a measured point, from its samples file (None without samples)."""
    row = result.row
    ident = {k: row.get(k) for k in ("point", "repeat", "transport")}
    path = session.run_dir / SAMPLES_DIR / point_file_name(ident)
    if not path.exists():
        return None
    latency = pd.read_parquet(path, columns=["latency_ms"])["latency_ms"].dropna().to_numpy()
    if not latency.size:
        return None
    return float(nearest_rank(latency, (95,))[0])


def _round_clients(value: float) -> float:
    """Whole subscribers, two significant digits past 1,000 (tidy steps, same search)."""
    if value < 100:
        return float(max(1, round(value)))
    digits = int(math.floor(math.log10(value))) - 1
    return float(round(value, -digits))


def machine_ceiling(session: Session, transport: str, rate: float, payload: int,
                    low: int, high: int) -> tuple[int, str]:
    """(largest subscriber count in [low, high] this machine can hold, why not one more);
    ``(high, "")`` when ``high`` fits. Only the limit checks run (open files, ports)."""

    def fits(clients: int) -> str:
        point = LoadPoint(index=0, repeat=0, transport=transport, clients=clients, rate=rate,
                          payload_bytes=payload)
        try:
            session.check_limits([point])
        except LimitError as exc:
            return str(exc)
        return ""

    why = fits(high)
    if not why:
        return high, ""
    why_low = fits(low)
    if why_low:
        return low, why_low  # not even the first step fits: run_step will say so
    while high - low > 1:  # about 20 checks from 1,000 to 1,000,000
        middle = (low + high) // 2
        reason = fits(middle)
        if reason:
            high, why = middle, reason
        else:
            low = middle
    return low, why.split(":")[0]


def search_clients(session: Session, transport: str, args: argparse.Namespace,
                   counter: list[int], total_hint: int) -> CapacityResult:
    """Double subscribers at a fixed rate until p95 > bound or a loss; bisect; repeat the knee."""
    stopped: list[str] = []

    def run_step(clients: float):
        point = LoadPoint(index=counter[0], repeat=0, transport=transport,
                          clients=int(clients), rate=args.rate, payload_bytes=args.payload)
        try:
            session.check_limits([point])
        except LimitError as exc:
            stopped.append(f"machine limit at {int(clients):,} subscribers: {exc}")
            session.console.info(f"  {stopped[-1]}")
            return None
        counter[0] += 1
        result = session.run_point(point, counter[0], total_hint)
        p95 = p95_of(session, result) if result.measured else None
        # sent_p99 >= sent_p95: judging "kept up" on it is conservative (see judge).
        realtime = publisher_realtime(session.run_dir, point)
        if p95 is None:  # no samples file: p99 is an upper bound of p95 (conservative)
            verdict = judge(result, args.p95_ms, name="p99 (no samples for p95)",
                            publisher_realtime=realtime)
        else:
            verdict = judge(result, args.p95_ms, latency=p95, name="p95",
                            publisher_realtime=realtime)
        say(session.console, result, verdict)
        return result, verdict

    ceiling, limit = machine_ceiling(session, transport, args.rate, args.payload,
                                     args.start_clients, args.max_clients)
    if limit:
        session.console.info(f"  {transport}: at most {ceiling:,} subscribers fit this "
                             f"machine ({limit})")

    def rounder(value: float) -> float:
        # The doubling would jump past the machine's limits: the last step is its ceiling.
        return float(min(_round_clients(value), ceiling))

    found = bracket(run_step, start=args.start_clients, factor=args.factor,
                    max_value=float("inf") if limit else args.max_clients, refine=args.refine,
                    max_steps=args.max_steps, knee_repeats=args.knee_repeats, rounder=rounder,
                    min_value=args.start_clients / args.factor ** 3)
    if limit and found.bad is None and found.good is not None and found.good.value >= ceiling:
        stopped.append(f"held the machine's ceiling of {ceiling:,} subscribers ({limit})")
    why_none = stopped[0] if stopped else f"reached --max-clients {args.max_clients:,}"
    result = result_from(transport, args.start_clients, found,
                         rate_of=lambda step: args.rate, why_none=why_none, by="subscribers")
    return result
