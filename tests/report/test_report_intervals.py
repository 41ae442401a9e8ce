"""Rerun intervals: this run's own error plus what a rerun adds, twice (two runs differ)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from duplexbench.report import calibration
from duplexbench.report.intervals import (
    Z,
    ratio_interval,
    ratio_var,
    repeats_to_resolve,
    spread_of,
)


@pytest.fixture(autouse=True)
def _model(monkeypatch):
    monkeypatch.setitem(calibration.RERUN_SD, "lat_p99_ms", {"*": 0.2})
    monkeypatch.setitem(calibration.RERUN_SD, "bytes_per_msg", {"*": 0.01})
    monkeypatch.setitem(calibration.RATIO_RERUN_SD, "lat_p99_ms", 0.15)


def _rows(metric, values, se=None):
    frame = pd.DataFrame({metric: values})
    if se is not None:
        frame[f"se_{metric}"] = se
    return frame


def test_one_repeat_adds_the_rerun_model_and_doubles_the_variance():
    spread = spread_of(_rows("lat_p99_ms", [4.0], [0.15]), "lat_p99_ms", 4.0)
    assert spread.var == pytest.approx(0.15**2 + 0.2**2) and spread.repeats == 1
    lo, hi = spread.interval()
    half = Z * math.sqrt(2 * (0.15**2 + 0.2**2))
    assert (lo, hi) == pytest.approx((4.0 * math.exp(-half), 4.0 * math.exp(half)))


def test_counts_carry_only_the_rerun_part():
    spread = spread_of(_rows("bytes_per_msg", [131.0]), "bytes_per_msg", 131.0)
    assert spread.var == pytest.approx(0.01**2)


def test_a_run_without_its_samples_states_no_interval():
    spread = spread_of(_rows("lat_p99_ms", [4.0]), "lat_p99_ms", 4.0)
    assert math.isnan(spread.var) and math.isnan(spread.interval()[0])


def test_repeats_use_their_spread_when_it_is_larger_and_divide_by_their_number():
    quiet = spread_of(_rows("lat_p99_ms", [4.0, 4.1, 3.9], [0.05] * 3), "lat_p99_ms", 4.0)
    assert quiet.repeats == 3
    assert quiet.var == pytest.approx((0.05**2 + 0.2**2) / 3)  # the model is larger
    loud = spread_of(_rows("lat_p99_ms", [2.0, 4.0, 8.0], [0.05] * 3), "lat_p99_ms", 4.0)
    assert loud.var == pytest.approx(math.log(2) ** 2 / 3)  # the repeats' own spread


def test_ratio_interval_adds_both_own_errors_and_the_ratios_rerun_part():
    best = spread_of(_rows("lat_p99_ms", [1.0], [0.1]), "lat_p99_ms", 1.0)
    worst = spread_of(_rows("lat_p99_ms", [3.0], [0.1]), "lat_p99_ms", 3.0)
    assert ratio_var(best, worst) == pytest.approx(0.1**2 + 0.1**2 + 0.15**2)
    lo, hi = ratio_interval(best, worst)
    half = Z * math.sqrt(2 * (0.1**2 + 0.1**2 + 0.15**2))
    assert (lo, hi) == pytest.approx((3 * math.exp(-half), 3 * math.exp(half)))
    # Narrower than the two transports' rerun parts added: a rerun moves both together.
    assert ratio_var(best, worst) < best.var + worst.var
    assert 1 < lo < 3 < hi  # a finding at one repeat


def test_without_a_ratio_model_both_sides_add(monkeypatch):
    monkeypatch.delitem(calibration.RATIO_RERUN_SD, "lat_p99_ms")
    best = spread_of(_rows("lat_p99_ms", [1.0], [0.1]), "lat_p99_ms", 1.0)
    worst = spread_of(_rows("lat_p99_ms", [3.0], [0.1]), "lat_p99_ms", 3.0)
    assert ratio_var(best, worst) == pytest.approx(best.var + worst.var)


def test_repeats_divide_the_ratios_rerun_part():
    best = spread_of(_rows("lat_p99_ms", [1.0, 1.0, 1.0], [0.1] * 3), "lat_p99_ms", 1.0)
    worst = spread_of(_rows("lat_p99_ms", [3.0, 3.0, 3.0], [0.1] * 3), "lat_p99_ms", 3.0)
    assert ratio_var(best, worst) == pytest.approx((0.1**2 + 0.1**2 + 0.15**2) / 3)


def test_repeats_to_resolve_is_where_the_interval_leaves_one():
    best = spread_of(_rows("lat_p99_ms", [1.0], [0.1]), "lat_p99_ms", 1.0)
    worst = spread_of(_rows("lat_p99_ms", [1.5], [0.1]), "lat_p99_ms", 1.5)
    assert ratio_interval(best, worst)[0] < 1  # a tie at one repeat
    needed = repeats_to_resolve(best, worst)
    assert needed is not None and needed > 2
    per = ratio_var(best, worst)
    for r, clear in ((needed, True), (needed - 1, False)):
        lo = 1.5 * math.exp(-Z * math.sqrt(2 * per / r))
        assert (lo > 1) is clear


def test_the_rerun_part_is_per_transport(monkeypatch):
    monkeypatch.setitem(calibration.RERUN_SD, "bytes_per_msg", {"longpoll": 0.1, "*": 0.0})
    rows = _rows("bytes_per_msg", [131.0]).assign(transport="websocket")
    assert spread_of(rows, "bytes_per_msg", 131.0).var == 0.0  # a stream's bytes never move
    rows = _rows("bytes_per_msg", [280.0]).assign(transport="longpoll")
    assert spread_of(rows, "bytes_per_msg", 280.0).var == pytest.approx(0.01)  # batching does
