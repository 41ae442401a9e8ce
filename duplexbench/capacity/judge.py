"""The capacity criterion: did one step sustain its rate, and what bounded it.

Pure functions of a measured point's row (plus whether its publisher ran at
real-time priority), used by both searches of :mod:`duplexbench.capacity.search`
(by rate, and by subscribers in :mod:`duplexbench.capacity.clients`).
``bound`` names the side that limited the step: ``server``, ``loadgen``,
``both`` or ``none``; docs/DESIGN.md ("Capacity") explains the rule for steps
where both cores were saturated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..measure.validity import SATURATED_PCT, loadgen_pct_per_core, publish_shortfall
from ..runner.outcome import PointResult
from ..scenario import LoadPoint

__all__ = ["BOUNDS", "Verdict", "bound_of", "judge", "num", "publisher_realtime"]


#: What limited a transport: its server, the load generator, both, or neither core.
BOUNDS = ("server", "loadgen", "both", "none")


@dataclass(frozen=True)
class Verdict:
    """Did one step sustain its rate, and if not, why."""

    sustained: bool
    why: str  # "" when sustained
    loadgen_bound: bool = False
    server_bound: bool = False
    #: Why a saturated load generator was not named (see judge), else "".
    note: str = ""

    @property
    def bound(self) -> str:
        return bound_of(self.server_bound, self.loadgen_bound)


def bound_of(server: bool, loadgen: bool) -> str:
    return "both" if server and loadgen else "server" if server else \
        "loadgen" if loadgen else "none"


def num(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def judge(result: PointResult, limit_ms: float, latency: float | None = None,
          name: str = "p99", publisher_realtime: bool = False) -> Verdict:
    """Apply the capacity criterion to one measured point.

    ``latency``: the figure judged (default the row's p99); ``name`` its label.
    ``publisher_realtime``: the publisher ran at SCHED_FIFO (counters.json's
    ``publisher_sched``), so it was never late for want of CPU on the load
    generator's core.

    What bounded the step: the server when its core was saturated; the load
    generator when its core was saturated or its publisher fell short. When
    both cores were saturated, the side where messages waited is named: if the
    subscribers got every message within the bound *of its actual send*
    (``sent_p99_ms``), the publisher sent its whole schedule at real-time
    priority and nothing was lost, the latency was spent before the send, with
    the publisher's POSTs in flight waiting for the server's answers (clients/
    pubproc.py), so the server alone is named and the load generator's share
    is kept as a note: it was busy but kept up.
    """
    row = result.row
    pct = loadgen_pct_per_core(row)
    server = num(row.get("server_cpu_pct"))
    server_bound = server is not None and server > SATURATED_PCT
    # Same rule as validity.py: a publisher far behind its schedule is a saturated client.
    shortfall = bool(publish_shortfall(row))
    bound = pct > SATURATED_PCT or (shortfall and not server_bound)
    lost = num(row.get("lost")) or 0
    note = ""
    if bound and server_bound and publisher_realtime and not shortfall and lost == 0:
        sent = num(row.get("sent_p99_ms"))
        if sent is not None and sent < limit_ms:
            bound = False
            note = (f"load generator at {pct:.0f}% but kept up (p99 from the send "
                    f"{sent:.1f} ms): the wait was before the send, for the server")
    if not result.measured:
        return Verdict(False, f"point failed: {result.reason.splitlines()[0] if result.reason else '?'}",
                       bound, server_bound)
    if result.status not in ("ok", "lost"):
        return Verdict(False, f"client errors ({result.status})", bound, server_bound)
    if lost > 0:
        return Verdict(False, f"lost {lost:.0f}", bound, server_bound)
    value = latency if latency is not None else num(row.get("lat_p99_ms"))
    if value is None:
        return Verdict(False, "no latency samples", bound, server_bound)
    if value >= limit_ms:
        return Verdict(False, f"{name} {value:.1f} ms >= {limit_ms:g} ms", bound, server_bound,
                       note)
    return Verdict(True, "", bound, server_bound, note)


def publisher_realtime(run_dir: Path, point: LoadPoint) -> bool:
    """Did this point's publisher run at SCHED_FIFO (its counters.json says so)?"""
    path = (Path(run_dir) / "points" / f"{point.index:03d}-{point.transport}-r{point.repeat}"
            / "counters.json")
    try:
        sched = json.loads(path.read_text(encoding="utf-8")).get("publisher_sched")
    except (OSError, ValueError, AttributeError):
        return False
    return str(sched or "").startswith("SCHED_FIFO")
