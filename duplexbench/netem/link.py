"""The emulated link as pure arithmetic: when may a chunk of bytes leave the proxy?

Kept apart from the sockets (as python-websockets keeps its protocol core apart
from I/O) so the model is tested without a network and the proxy only moves
bytes. One :class:`Direction` per direction of one proxied connection; a
:class:`TokenBucket` may be shared by every connection's direction to model one
bottleneck link, as netem on an interface would.

What each knob means (and why it is honest for a TCP byte stream):

- ``delay_ms``: one-way propagation delay, added in each direction, so a round
  trip costs ``2 × delay_ms``.
- ``jitter_ms``: each chunk's delay is ``delay ± uniform(jitter)``, but a chunk
  never leaves before the one read before it: TCP delivers bytes in order, so
  jitter here can only *hold back* data, never reorder it (netem reorders
  packets, then TCP puts them back in order; the application sees the same).
- ``bandwidth_kbps``: token bucket (kilobits/s, 1 kbit = 1000 bits) in front of
  the delay: serialisation, then propagation, as on a real link.
- ``loss_pct``: the proxy cannot drop bytes of a TCP stream (TCP would
  retransmit them), so it emulates what an application sees when a segment is
  lost: a chunk of ``n`` bytes spans ``ceil(n / mss)`` segments; with
  probability ``1 - (1 - p)^segments`` it is held back by one retransmission
  timeout, ``rto_ms + 2 × delay`` (Linux: RTO ≈ SRTT + max(4·RTTVAR, 200 ms)),
  and everything behind it on that connection waits too (head-of-line
  blocking). Fast retransmit (≈ 1 RTT) is not modelled: at the low rates of
  duplexbench's latency scenarios a lost segment is usually a tail loss,
  recovered by the timer. This is a stall model, not a packet model.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Direction", "LinkConfig", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class LinkConfig:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kbps: float = 0.0  # 0 = unlimited
    loss_pct: float = 0.0
    #: Linux's minimum retransmission timeout (TCP_RTO_MIN); a loss stalls for rto + RTT.
    rto_ms: float = 200.0
    #: Segment size used to turn a per-segment loss rate into a per-chunk one.
    mss: int = 1448
    #: Token-bucket depth; 0 = max(2 full frames, 10 ms of the rate).
    burst_bytes: int = 0
    #: Emulate the TCP handshake: a new connection's first bytes leave one RTT late.
    handshake: bool = True

    def validate(self) -> "LinkConfig":
        for name in ("delay_ms", "jitter_ms", "bandwidth_kbps", "loss_pct", "rto_ms"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.loss_pct >= 100:
            raise ValueError(f"loss_pct must be below 100, got {self.loss_pct!r}")
        if self.mss <= 0:
            raise ValueError(f"mss must be positive, got {self.mss!r}")
        return self

    @property
    def stall_s(self) -> float:
        """How long a lost segment holds its chunk back: one RTO plus the RTT."""
        return (self.rto_ms + 2 * self.delay_ms) / 1000.0

    def bucket(self) -> "TokenBucket | None":
        if not self.bandwidth_kbps:
            return None
        rate = self.bandwidth_kbps * 1000 / 8  # bytes per second
        burst = self.burst_bytes or max(2 * 1514, int(rate * 0.010))
        return TokenBucket(rate, burst)


class TokenBucket:
    """Bytes/s with a burst; a chunk larger than the tokens waits for the debt to clear."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate_bytes_s: float, burst_bytes: int) -> None:
        self.rate = float(rate_bytes_s)
        self.burst = float(burst_bytes)
        self._tokens = self.burst
        self._stamp = 0.0

    def departure(self, now: float, nbytes: int) -> float:
        """When ``nbytes`` offered at ``now`` have been serialised onto the link."""
        # A shared bucket may be asked about an earlier time by another
        # connection; time never runs backwards for the bucket.
        now = max(now, self._stamp)
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= nbytes
        if self._tokens >= 0:
            return now
        return now + (-self._tokens) / self.rate


class Direction:
    """Release times for the chunks of one direction of one connection, in order."""

    __slots__ = ("config", "bucket", "rng", "not_before", "last_release", "stalls")

    def __init__(
        self,
        config: LinkConfig,
        rng: random.Random,
        bucket: TokenBucket | None = None,
        not_before: float = 0.0,
    ) -> None:
        self.config = config
        self.bucket = bucket
        self.rng = rng
        #: Nothing departs earlier (the emulated handshake's round trip).
        self.not_before = not_before
        #: The previous chunk's release: later chunks never overtake it.
        self.last_release = 0.0
        #: Chunks held back by an emulated loss.
        self.stalls = 0

    def release_time(self, now: float, nbytes: int) -> float:
        cfg = self.config
        depart = max(now, self.not_before)
        if self.bucket is not None:
            depart = self.bucket.departure(depart, nbytes)
        latency = cfg.delay_ms / 1000.0
        if cfg.jitter_ms:
            latency = max(0.0, latency + self.rng.uniform(-cfg.jitter_ms, cfg.jitter_ms) / 1000.0)
        if cfg.loss_pct:
            segments = max(1, math.ceil(nbytes / cfg.mss))
            p_chunk = 1.0 - (1.0 - cfg.loss_pct / 100.0) ** segments
            if self.rng.random() < p_chunk:
                latency += cfg.stall_s
                self.stalls += 1
        release = max(depart + latency, self.last_release)
        self.last_release = release
        return release

    def eof_time(self, now: float) -> float:
        """A FIN travels like data: after the delay and after everything before it."""
        release = max(max(now, self.not_before) + self.config.delay_ms / 1000.0, self.last_release)
        self.last_release = release
        return release
