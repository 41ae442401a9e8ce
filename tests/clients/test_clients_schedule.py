"""Open-loop schedules: counts, spacing, warm-up split, reproducibility."""

from __future__ import annotations

import numpy as np

from clients.schedule import make_schedule


def test_uniform():
    s = make_schedule(100, warmup_s=1, duration_s=2)
    assert len(s) == 300
    assert s.first_measured == 100 and s.measured == 200
    assert s.offsets_ns[0] == 0
    assert set(np.diff(s.offsets_ns)) <= {10_000_000, 9_999_999, 10_000_001}
    assert s.offsets_ns[-1] < s.total_ns == 3_000_000_000


def test_uniform_without_warmup_and_zero_rate():
    assert make_schedule(10, 0, 1).first_measured == 0
    empty = make_schedule(0, 1, 1)
    assert len(empty) == 0 and empty.measured == 0


def test_poisson_is_seeded_and_near_the_rate():
    a = make_schedule(1000, 1, 4, "poisson", seed=7)
    b = make_schedule(1000, 1, 4, "poisson", seed=7)
    c = make_schedule(1000, 1, 4, "poisson", seed=8)
    assert np.array_equal(a.offsets_ns, b.offsets_ns)
    assert not np.array_equal(a.offsets_ns, c.offsets_ns)
    assert 4700 < len(a) < 5300  # 5000 expected; 5 sigma is about 350
    assert np.all(np.diff(a.offsets_ns) >= 0) and a.offsets_ns[-1] < a.total_ns
    assert a.offsets_ns[a.first_measured] >= a.warmup_ns > a.offsets_ns[a.first_measured - 1]
