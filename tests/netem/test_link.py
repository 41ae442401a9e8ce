"""The link model without sockets: delay, order, token bucket, loss stall."""

from __future__ import annotations

import random

import pytest

from duplexbench.netem.link import Direction, LinkConfig, TokenBucket


def test_delay_is_added_to_every_chunk():
    d = Direction(LinkConfig(delay_ms=25), random.Random(1))
    assert d.release_time(1.0, 100) == pytest.approx(1.025)
    assert d.release_time(2.0, 100) == pytest.approx(2.025)


def test_jitter_never_reorders():
    d = Direction(LinkConfig(delay_ms=10, jitter_ms=9), random.Random(2))
    releases = [d.release_time(i * 0.0001, 10) for i in range(2000)]
    assert releases == sorted(releases)
    assert min(r - i * 0.0001 for i, r in enumerate(releases)) >= 0.001 - 1e-9


def test_handshake_floor_delays_first_bytes_by_one_rtt():
    d = Direction(LinkConfig(delay_ms=25), random.Random(1), not_before=0.050)
    assert d.release_time(0.0, 10) == pytest.approx(0.075)  # SYN, SYN-ACK, then the data


def test_token_bucket_serialises_at_the_rate():
    bucket = TokenBucket(rate_bytes_s=1000.0, burst_bytes=100)
    assert bucket.departure(0.0, 100) == 0.0  # the burst
    assert bucket.departure(0.0, 500) == pytest.approx(0.5)
    assert bucket.departure(0.0, 500) == pytest.approx(1.0)


def test_loss_stalls_by_an_rto_and_holds_later_chunks():
    cfg = LinkConfig(delay_ms=10, loss_pct=99.9, rto_ms=200)
    d = Direction(cfg, random.Random(3))
    first = d.release_time(0.0, 100)
    assert first == pytest.approx(0.010 + 0.220)  # delay + RTO + RTT
    assert d.stalls == 1


def test_loss_probability_grows_with_segments():
    cfg = LinkConfig(loss_pct=1.0)
    small = Direction(cfg, random.Random(4))
    big = Direction(cfg, random.Random(4))
    for i in range(3000):
        small.release_time(i, 100)  # one segment
        big.release_time(i, 100 * 1448)  # a hundred segments: ~63 %
    assert 10 <= small.stalls <= 60
    assert big.stalls > 1500


@pytest.mark.parametrize("field", ["delay_ms", "jitter_ms", "bandwidth_kbps", "loss_pct"])
def test_invalid_values_are_refused(field):
    with pytest.raises(ValueError, match=field):
        LinkConfig(**{field: -1}).validate()
