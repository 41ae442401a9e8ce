"""The engine core: the figures every load generator computes the same way.

Pure functions over arrays (no sockets, no event loop), used by the native
engine (clients.point) and by the Locust users (locustfiles/), so "delivered",
"lost", "late", "reordered", message sizes and the byte window mean the same
thing whichever engine produced them:

- the schedule: :func:`clients.schedule.make_schedule` (re-exported);
- the delivery tally: :func:`clients.accounting.tally` over per-subscriber
  logs, plus :func:`count_late` (late is not lost);
- the drain bound: :func:`drain_bound_s`, from the latency observed;
- message sizes: :func:`message_sizes` (envelopes as the server encodes
  them) and :func:`message_bytes_up` (what one message costs going up);
- the byte window: :func:`tcp_window` (kernel counts, IP headers added).
"""

from __future__ import annotations

import numpy as np

from duplexbench.contract import encode_envelope, make_payload
from duplexbench.contract.websocket import encode_publish

from .accounting import DeliveryTotals, Samples, SubscriberLog, tally
from .schedule import Schedule, make_schedule
from .tcpinfo import FIELDS, IP_HEADER_BYTES

__all__ = [
    "DeliveryTotals", "LATE_MIN_S", "LATE_P99_FACTOR", "Samples", "Schedule", "SubscriberLog",
    "count_late", "drain_bound_s", "listen_s", "message_bytes_up", "message_sizes",
    "make_schedule", "tally", "tcp_window",
]

#: The drain waits at least this long for stragglers ...
LATE_MIN_S = 1.0
#: ... or this many times the p99 latency observed in the window, if longer.
LATE_P99_FACTOR = 4.0


def drain_bound_s(latencies_ns: np.ndarray, drain_max_s: float) -> float:
    """How long after the window a measured message may still arrive on time:
    max(LATE_MIN_S, LATE_P99_FACTOR x observed p99), at most ``drain_max_s``."""
    p99 = float(np.percentile(latencies_ns, 99)) / 1e9 if len(latencies_ns) else 0.0
    return min(drain_max_s, max(LATE_MIN_S, LATE_P99_FACTOR * p99))


def listen_s(bound_s: float, drain_s: float, drain_max_s: float) -> float:
    """How long the drain keeps listening (when something is still missing):
    past the bound, so late deliveries are seen and told apart from losses."""
    return max(drain_s, min(drain_max_s, 2.0 * bound_s))


def count_late(recv_ns: np.ndarray, deadline_ns: int) -> int:
    """Deliveries received after the drain bound (they are delivered, and late)."""
    return int((np.asarray(recv_ns) > deadline_ns).sum())


def message_sizes(published_ok: np.ndarray, topic_of: np.ndarray, sent_ns: np.ndarray,
                  first: int, topics: tuple[str, ...], payload_bytes: int,
                  nominal_ts: int) -> tuple[float, int, int]:
    """Mean / min / max encoded envelope of the measured messages published.

    The seq of each is reconstructed as its position on its topic (exact up to
    the order concurrent publishes reach the hub, which changes a size only
    where a seq gains a digit).
    """
    ok = np.flatnonzero(published_ok)
    if not (ok >= first).any():
        nominal = len(encode_envelope(1, topics[0], nominal_ts, make_payload(first, payload_bytes)))
        return float(nominal), nominal, nominal
    ks = topic_of[ok]
    seqs = np.zeros(len(ok), dtype=np.int64)
    counters: dict[int, int] = {}
    for j, k in enumerate(ks.tolist()):
        counters[k] = counters.get(k, 0) + 1
        seqs[j] = counters[k]
    measured = ok >= first
    lengths = [
        len(encode_envelope(int(seq), topics[int(k)], int(ts), make_payload(int(i), payload_bytes)))
        for i, k, seq, ts in zip(ok[measured], ks[measured], seqs[measured], sent_ns[ok[measured]])
    ]
    return round(float(np.mean(lengths)), 3), int(min(lengths)), int(max(lengths))


def message_bytes_up(published_ok: np.ndarray, sent_ns: np.ndarray, first: int,
                     payload_bytes: int, ws_frames: bool, nominal_ts: int) -> float:
    """Mean upstream size of the measured messages: the POST body, or the
    WebSocket publish frame's payload ``{"ts":..,"data":..}`` (nominal when none)."""
    ok = np.flatnonzero(published_ok[first:]) + first
    if not ws_frames:
        indices = ok.tolist() or [first]
        lengths = [len(make_payload(i, payload_bytes).encode()) for i in indices]
    elif len(ok):
        lengths = [len(encode_publish(make_payload(int(i), payload_bytes), int(ts)).encode())
                   for i, ts in zip(ok.tolist(), sent_ns[ok].tolist())]
    else:
        lengths = [len(encode_publish(make_payload(first, payload_bytes), nominal_ts).encode())]
    return round(float(np.mean(lengths)), 3)


def tcp_window(start: tuple[int, ...], end: tuple[int, ...]) -> dict[str, int]:
    """Kernel counts over the window, plus IP-level bytes (payload + one
    IP+TCP header per segment, pure ACKs included)."""
    d = dict(zip(FIELDS, (e - s for s, e in zip(start, end))))
    d["ip_bytes_out"] = d["bytes_acked"] + d["segs_out"] * IP_HEADER_BYTES
    d["ip_bytes_in"] = d["bytes_received"] + d["segs_in"] * IP_HEADER_BYTES
    return d
