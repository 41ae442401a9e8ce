"""The gate's statistics on synthetic samples: quiet on noise, loud on real changes."""

from __future__ import annotations

import numpy as np
import pytest

from duplexbench.compare.runs import METRICS
from duplexbench.compare.stats import (
    BETTER,
    SAME,
    WORSE,
    Threshold,
    bootstrap_ratio_ci,
    compare_counts,
    compare_repeats,
    compare_samples,
    mann_whitney_p,
    thin,
)

from .synthetic import latency_samples

#: p50, p90, p99 of intended-time latency, with the thresholds the command uses.
LATENCY = [(m.quantile, m.threshold) for m in METRICS
           if m.column == "latency_ms" and m.quantile in (0.5, 0.9, 0.99)]


def _side(rng, repeats=3, n=1500, **kw):
    return [latency_samples(rng, n, **kw) for _ in range(repeats)]


def test_identical_distributions_never_alarm_over_many_seeds():
    # 40 seeds x 3 quantiles: the noise (skew, autocorrelation, per-repeat levels) makes
    # Mann-Whitney "significant" often; the minimum change and the repeat check must hold.
    alarms, significant = [], 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        verdicts = compare_samples(_side(rng), _side(rng), LATENCY, n_boot=500, seed=seed)
        significant += verdicts[0].p_value < 0.01
        alarms += [(seed, v) for v in verdicts if v.verdict != SAME]
    assert alarms == []
    assert significant > 0, "the noise model should fool a bare U test at least once"


def test_one_disturbed_repeat_is_not_a_regression():
    # A neighbour's job slows one current repeat only, enough to move the pooled p50 past the
    # minimum change and to make the U test significant: inconsistent, so not a verdict.
    rng = np.random.default_rng(7)
    current = _side(rng, median_ms=4.0)
    current[1] = current[1] * 3.0
    p50 = compare_samples(_side(rng, median_ms=4.0), current, LATENCY[:1])[0]
    assert p50.change > 0.25 and p50.delta > 1.0 and p50.p_value < 0.01
    assert p50.verdict == SAME and "repeats" in p50.reason


@pytest.mark.parametrize("seed", range(5))
def test_two_ms_delay_on_one_ms_latency_is_worse(seed):
    rng = np.random.default_rng(100 + seed)
    base, cur = _side(rng), _side(rng, shift_ms=2.0)
    p50, p90, p99 = compare_samples(base, cur, LATENCY, n_boot=500, seed=seed)
    assert p50.verdict == WORSE
    assert p50.p_value < 0.001 and p50.ci[0] > 1.0
    assert p50.delta == pytest.approx(2.0, abs=0.4)
    assert p90.delta == pytest.approx(2.0, abs=0.6) and p90.ci[0] > 1.0


def test_faster_is_better_and_direction_follows_threshold():
    rng = np.random.default_rng(3)
    base, cur = _side(rng, shift_ms=2.0), _side(rng)
    assert compare_samples(base, cur, LATENCY[:1])[0].verdict == BETTER


def test_small_real_shift_below_minimum_change_is_same():
    # +0.3 ms on 1 ms is real (significant) but below the 1 ms floor: not worth a red build.
    rng = np.random.default_rng(11)
    base = _side(rng, n=3000)
    cur = [b + 0.3 for b in base]  # the very same noise, shifted: maximally significant
    (p50,) = compare_samples(base, cur, LATENCY[:1])
    assert p50.p_value < 0.01 and p50.verdict == SAME and "minimum" in p50.reason


def test_hundred_extra_bytes_per_message_is_worse():
    th = next(m.threshold for m in METRICS if m.name == "bytes_down_per_msg")
    base = [126.1, 125.8, 126.3]
    assert compare_repeats(base, [b + 100 for b in base], th).verdict == WORSE
    # Heartbeat / handshake amortisation noise (< 1 byte) is not a change.
    assert compare_repeats(base, [126.4, 125.9, 126.9], th).verdict == SAME


def test_throughput_lower_is_worse_and_needs_non_overlapping_repeats():
    th = next(m.threshold for m in METRICS if m.name == "throughput_msgs_s")
    assert compare_repeats([4000, 4002, 3998], [3600, 3610, 3590], th).verdict == WORSE
    assert compare_repeats([4000, 4002, 3998], [4400, 4410, 4390], th).verdict == BETTER
    overlap = compare_repeats([4000, 3000, 4000], [3000, 3500, 3700], th)
    assert overlap.verdict == SAME and overlap.reason == "repeats overlap"


def test_lost_messages_from_zero_is_worse():
    assert compare_counts([0, 0, 0], [0, 3, 0], 48000, 48000).verdict == WORSE
    assert compare_counts([2, 0, 0], [0, 0, 0], 48000, 48000).verdict == BETTER
    assert compare_counts([0, 0], [0, 0]).verdict == SAME
    # Both non-zero: the loss rate must at least double (and by 0.1 point).
    assert compare_counts([50, 50], [60, 40], 48000, 48000).verdict == SAME
    assert compare_counts([50, 50], [300, 300], 48000, 48000).verdict == WORSE


def test_bootstrap_is_deterministic_and_brackets_the_true_ratio():
    rng = np.random.default_rng(5)
    base, cur = _side(rng), [g * 2.0 for g in _side(rng)]
    first = bootstrap_ratio_ci(base, cur, (0.5,), seed=1)
    assert first == bootstrap_ratio_ci(base, cur, (0.5,), seed=1)
    lo, hi = first[0]
    assert lo < 2.0 * 1.3 and hi > 2.0 / 1.3 and lo > 1.0


def test_thin_keeps_the_spread_and_mann_whitney_handles_constants():
    values = np.arange(12000, dtype=float)
    kept = thin(values, 5000)
    assert len(kept) <= 5000 and kept[0] == 0 and kept[-1] > 11000
    assert mann_whitney_p(np.ones(10), np.ones(10)) == 1.0
    assert mann_whitney_p(np.arange(50.0), np.arange(50.0) + 100) < 1e-6


def test_tail_stability_needs_agreeing_baseline_repeats():
    from duplexbench.compare.stats import tail_is_stable

    rng = np.random.default_rng(3)
    th = Threshold(0.5, 2.0)
    steady = [rng.normal(5.0, 0.3, 4000) for _ in range(3)]
    stable, why = tail_is_stable(steady, 0.9, th)
    assert stable, why
    # One repeat with a tail twice as long: the baseline itself disagrees by more than +50 %.
    wild = steady[:2] + [np.concatenate([steady[2][:3000], rng.normal(15.0, 1.0, 1000)])]
    stable, why = tail_is_stable(wild, 0.9, th)
    assert not stable and "spread" in why
    stable, why = tail_is_stable(steady[:2], 0.9, th)
    assert not stable and ">= 3" in why


def test_paired_verdict_survives_one_disturbed_pair():
    from duplexbench.compare.stats import compare_paired

    rng = np.random.default_rng(5)
    th = Threshold(0.25, 1.0)
    base = [rng.normal(1.3, 0.2, 2000) for _ in range(3)]
    cur = [rng.normal(3.3, 0.2, 2000) for _ in range(3)]  # +2 ms in every pair
    base[1] = base[1] + 250.0  # one baseline repeat stalled by something else
    verdict = compare_paired(base, cur, [(0.5, th)])[0]
    assert verdict.verdict == "worse" and "2 of 3" in verdict.reason
    # The same build, with one pair disturbed on the current side only: not a regression.
    same = [rng.normal(1.3, 0.2, 2000) for _ in range(3)]
    noisy = [rng.normal(1.3, 0.2, 2000) for _ in range(3)]
    noisy[2] = noisy[2] + 5.0
    assert compare_paired(same, noisy, [(0.5, th)])[0].verdict == "same"


def test_a_tail_disturbed_in_two_current_repeats_is_not_stable():
    # The false alarm that made A/B mode check both sides: the same build, the current side hit
    # by a neighbour's load in 2 of 3 pairs (p99 x25), the base quiet.
    from duplexbench.compare.stats import compare_paired, tail_is_stable

    rng = np.random.default_rng(11)
    th = Threshold(1.0, 5.0)
    base = [rng.normal(1.0, 0.3, 3000) for _ in range(3)]
    cur = [rng.normal(1.0, 0.3, 3000) for _ in range(3)]
    for i in (0, 2):  # a busy moment: everything a little later, a few deliveries much later
        cur[i] += 0.5
        cur[i][::50] = rng.normal(120.0, 10.0, len(cur[i][::50]))
    assert compare_paired(base, cur, [(0.99, th)])[0].verdict == "worse"  # alone: an alarm
    assert tail_is_stable(base, 0.99, th)[0]
    stable, why = tail_is_stable(cur, 0.99, th, "current")
    assert not stable and why.startswith("current repeats spread")
