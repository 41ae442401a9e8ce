"""counters.json: what one load point saw, from a finished :class:`clients.point.LoadGen`.

Kept apart from the point itself (which connects, publishes and drains): this
is bookkeeping only, built on the engine core (clients.core) so the Locust
engine's figures mean the same.

Bytes: ``wire`` holds the window's payload bytes as the kernel counted them
(``bytes_up`` = ``tcpi_bytes_acked``, ``bytes_down`` = ``tcpi_bytes_received``,
summed over the role's sockets); ``tcp`` the raw kernel counts with segments,
so IP-level bytes are payload + segments x ``ip_header_bytes``.
"""

from __future__ import annotations

import json
import time

import numpy as np

from .core import count_late, message_bytes_up, message_sizes, tally
from .plan import ROUTE_POST, ROUTE_WS_SUB
from .tcpinfo import FIELDS, IP_HEADER_BYTES, diff

__all__ = ["build_counters", "nodelay_state"]


def build_counters(gen, complete: bool, reason: str | None) -> dict:
    spec, schedule, plan = gen.spec, gen.schedule, gen.plan
    n, first = len(schedule), gen.first
    if gen.window_end is None:  # stopped before the drain: close the window now
        gen.window_end = gen.last_snapshot()
        gen.drain_end_ns = time.monotonic_ns()
    totals = tally(gen.logs, gen.samples, gen.topic_of, gen.published_ok, first, n)
    measured_ok = gen.published_ok[first:]
    start = gen.window_start or gen.window_end
    end = gen.window_end
    sub_tcp = diff(end["sub"], start["sub"])
    if plan.route == ROUTE_WS_SUB:
        pub_tcp = (0, 0, 0, 0)  # messages went up the subscribers' sockets: counted there
    else:
        pub_tcp = tuple(gen.publisher.tcp_window) if gen.publisher and gen.publisher.tcp_window \
            else (0, 0, 0, 0)
    published = int(measured_ok.sum())
    posts = published if plan.route == ROUTE_POST else 0
    wire = {
        "sub": {"bytes_up": sub_tcp[0], "bytes_down": sub_tcp[1],
                "http_requests": end["requests"] - start["requests"],
                "connections": end["connections"] - start["connections"],
                "reconnects": end["reconnects"] - start["reconnects"], "errors": 0},
        "pub": {"bytes_up": pub_tcp[0], "bytes_down": pub_tcp[1], "http_requests": posts,
                "connections": 0, "reconnects": 0, "errors": 0},
    }
    now = time.monotonic_ns()
    sizes = message_sizes(gen.published_ok, gen.topic_of, gen.sent_ns, first, plan.topics,
                          spec.payload_bytes, now)
    recv = np.frombuffer(gen.samples.recv_ns, dtype=np.int64)
    late = count_late(recv, gen.late_after_ns) if gen.late_after_ns else 0
    negative = int((recv < np.frombuffer(gen.samples.sent_ns, dtype=np.int64)).sum())
    reconnects = sum(s.stats.reconnects for s in gen.subscribers)
    faults = gen.fault_stats()
    return {
        "complete": complete,
        "reason": reason,
        "engine": "native",
        "transport": spec.transport,
        "pattern": spec.pattern,
        "clients": spec.clients,
        "published": published,
        "publish_failed": _publish_failed(gen, published),
        "published_total": int(gen.published_ok.sum()),
        "scheduled": int(schedule.measured),
        "expected": totals.expected,
        "delivered": totals.delivered,
        "lost": totals.lost,
        "late": late,
        # recv before ts: impossible on one monotonic clock; counted, never dropped.
        "negative_latencies": negative,
        "drain_bound_s": round(gen.drain_bound_s, 6),
        "duplicated": totals.duplicated,
        "reordered": totals.reordered,
        "message_bytes": sizes[0],
        "message_bytes_min": sizes[1],
        "message_bytes_max": sizes[2],
        # What one measured message costs going up, as sent: the WebSocket publish
        # frame's payload ({"ts":..,"data":..}), or the POST body (the payload).
        "message_bytes_up": message_bytes_up(gen.published_ok, gen.sent_ns, first,
                                             spec.payload_bytes, plan.route != ROUTE_POST, now),
        "messages_up_on_sub": gen.up_on_sub,
        "bytes_window": "measure",
        "bytes_window_note": gen.bytes_window_note,
        "bytes_source": "TCP_INFO",
        "warmup_pause_ms": round(gen.pause_ns / 1e6, 3),
        "wire": wire,
        "wire_point": {"sub": dict(zip(("bytes_up", "bytes_down"), end["sub"][:2])),
                       "pub": dict(zip(("bytes_up", "bytes_down"), pub_tcp[:2]))},
        "tcp": {"sub": dict(zip(FIELDS, sub_tcp)), "pub": dict(zip(FIELDS, pub_tcp))},
        "ip_header_bytes": IP_HEADER_BYTES,
        "tcp_unreadable": gen.tcp["sub"].unreadable,
        # The receive loop (clients/reader.py) over the window: socket reads and wake-ups
        # (0 when every read went through asyncio), subscriptions it read at the end.
        "reader": {"reads": end.get("reads", 0) - start.get("reads", 0),
                   "wakeups": end.get("wakeups", 0) - start.get("wakeups", 0),
                   "taken": end.get("taken", 0)},
        "reconnects": end["reconnects"] if gen.is_sharded else reconnects,
        "resets": sum(f[3] for f in faults),
        "disconnects": sum(f[1] for f in faults),
        "recovery": _recovery(faults, totals),
        "errors": gen.errors,
        "error_messages": gen.error_messages,
        "measure_start_ns": (gen.start_ns + gen.pause_ns + schedule.warmup_ns
                             if gen.start_ns else None),
        "measure_end_ns": gen._measure_end_ns(),
        "drain_end_ns": gen.drain_end_ns or None,
        "clock": "CLOCK_MONOTONIC",
        "samples": len(gen.samples),
        "tcp_nodelay": nodelay_state(gen),
        "gc": gen.gc_note,
        "procs": gen.procs,
        "publisher_sched": gen.publisher.sched if gen.publisher is not None else None,
        "spec": json.loads(spec.to_json()),
    }


def _recovery(faults: list[tuple[int, int, int, int, bool]], totals) -> dict | None:
    """After a fault (a lost connection or a server restart): how long until every
    affected subscriber received again, and what it lost (None: no fault)."""
    hit = [f for f in faults if f[1] or f[3]]
    if not hit:
        return None
    lost = totals.lost_per_sub
    return {
        "recovery_s_max": round(max(f[2] for f in hit) / 1e9, 6),
        "disconnects": sum(f[1] for f in hit),
        "reconnects": sum(f[1] for f in hit) - sum(1 for f in hit if f[4]),
        "unrecovered": sum(1 for f in hit if f[4]),
        "resets": sum(f[3] for f in hit),
        "lost_across_fault": int(sum(lost[f[0]] for f in hit)) if lost is not None else None,
    }


def _publish_failed(gen, measured_ok: int) -> int:
    """Measured publishes attempted that did not succeed (not sent: errors,
    not losses); POSTs still unanswered at the end are among them."""
    attempted = max(0, gen.sent - gen.first)  # messages go out in index order
    return max(0, attempted - measured_ok)


def nodelay_state(gen) -> bool | None:
    """Whether TCP_NODELAY was on for the subscribers' current connections."""
    if getattr(gen, "shard_nodelay", None):
        states = [s for s in gen.shard_nodelay if s is not None]
        return all(states) if states else None
    states = []
    for sub in gen.subscribers[:50]:
        conn = getattr(sub, "_conn", None) or sub
        if hasattr(conn, "nodelay"):
            states.append(bool(conn.nodelay))
    return all(states) if states else None
