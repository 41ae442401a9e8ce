"""The noise a single run measures of itself: block bootstrap over messages, CPU blocks.

The synthetic runs model a fan-out: every subscriber's copy of a message shares
that message's delay (an AR(1) process over consecutive messages: a slow stretch
delays every copy of several messages in a row), plus each delivery's own noise.
Many independent runs of the same model are "reruns": an interval is judged by
how often it holds the other runs' figures.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from duplexbench.report.noise import (
    block_counts,
    cpu_se,
    percentile_noise,
    percentile_se,
    point_noise,
)

RATE = 200.0  # messages/s
Z99 = 2.5758


def _fanout_run(seed: int, messages: int = 1200, subscribers: int = 10, phi: float = 0.97,
                shared_sd: float = 0.4):
    """(latency_ms, recv_s) of one synthetic run: shared per-message AR(1) delay factor."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, math.sqrt(1 - phi * phi), messages)
    shared = np.empty(messages)
    shared[0] = rng.normal()
    for k in range(1, messages):
        shared[k] = phi * shared[k - 1] + shocks[k]
    own = 0.5 + rng.exponential(0.2, (messages, subscribers))
    latency = np.exp(shared_sd * shared)[:, None] * own
    recv = np.arange(messages)[:, None] / RATE + latency / 1000
    return latency.ravel(), recv.ravel()


def _rerun_coverage(estimates: list[float], ses: list[float]) -> float:
    """Share of ordered pairs (i, j) where run j's figure is in run i's rerun interval."""
    logs = np.log(estimates)
    pairs = list(itertools.permutations(range(len(logs)), 2))
    return float(np.mean([abs(logs[j] - logs[i]) <= Z99 * math.sqrt(2) * ses[i]
                          for i, j in pairs]))


@pytest.mark.parametrize("percentile", [50, 99])
def test_block_bootstrap_is_wider_than_iid_and_covers_reruns(percentile):
    values, block, iid = [], [], []
    for seed in range(24):
        latency, recv = _fanout_run(seed)
        values.append(float(np.quantile(latency, percentile / 100)))
        block.append(float(percentile_se(latency, recv, (percentile,))[0]))
        iid.append(percentile_noise(latency, percentile) / 1.96)  # its log-scale se
    assert np.median(block) > 3 * np.median(iid)
    block_cover, iid_cover = _rerun_coverage(values, block), _rerun_coverage(values, iid)
    assert block_cover >= 0.8, block_cover  # 99 % nominal; few blocks per window cost a bit
    assert iid_cover <= 0.5, iid_cover  # deliveries as independent draws: far too narrow


def test_block_bootstrap_on_independent_deliveries_matches_iid():
    """No correlation to respect: the blocks must not invent noise."""
    rng = np.random.default_rng(7)
    latency = 0.5 + rng.exponential(0.2, 12_000)
    recv = np.repeat(np.arange(1200) / RATE, 10) + latency / 1000
    block = percentile_se(latency, recv, (50,))[0]
    iid = percentile_noise(latency, 50) / 1.96
    assert 0.5 < block / iid < 2.0


def test_every_copy_of_a_message_moves_together():
    counts = block_counts(100, 20, np.random.default_rng(1))
    assert counts.sum() == 100 and counts.size == 100
    # A unit drawn k times contributes all its deliveries k times: replicate with one
    # message per unit is the same as with ten identical copies per unit.
    rng = np.random.default_rng(2)
    latency = rng.exponential(1.0, 1200)
    recv = np.arange(1200) / RATE + latency / 1000
    one = percentile_se(latency, recv, (99,))[0]
    ten = percentile_se(np.repeat(latency, 10), np.repeat(recv, 10), (99,))[0]
    assert one == pytest.approx(ten, rel=0.15)


def test_percentile_interval_narrows_with_samples():
    rng = np.random.default_rng(3)
    small = percentile_noise(rng.exponential(1.0, 200), 99)
    large = percentile_noise(rng.exponential(1.0, 20_000), 99)
    assert 0 < large < small
    assert percentile_noise(np.full(500, 2.0), 50) == 0.0  # identical samples: no noise
    assert math.isnan(percentile_noise(np.array([1.0]), 50))


def _load(rates):
    """CPU rate per 0.5 s block as given, sampled at 20 Hz, phase measure."""
    t = np.arange(0, len(rates) * 0.5 + 1e-9, 0.05)
    per_tick = np.repeat(np.asarray(rates, dtype=float) * 0.05, 10)[: len(t) - 1]
    cpu = np.concatenate([[0.0], np.cumsum(per_tick)])
    return pd.DataFrame({"t_s": t, "cpu_sched_s": cpu, "cpu_user_s": cpu, "cpu_system_s": 0.0,
                         "phase": "measure"})


def test_cpu_se_from_blocks_of_ticks():
    steady = cpu_se(_load([0.5] * 12))
    bursty = cpu_se(_load([0.1, 0.9, 0.1, 0.1, 0.9, 0.9] * 2))
    assert steady < 0.01 < bursty
    assert math.isnan(cpu_se(_load([0.5]).head(3)))  # too few ticks: no estimate


def test_point_noise_per_row():
    summary = pd.DataFrame({"point": [0], "repeat": [0], "transport": ["sse"]})
    latency, recv = _fanout_run(5)
    samples = pd.DataFrame({"point": 0, "repeat": 0, "transport": "sse",
                            "latency_ms": latency, "recv_s": recv})
    load = _load([0.5] * 12).assign(point=0, repeat=0, transport="sse", process="server")
    noise = point_noise(summary, samples, load)
    assert 0.01 < noise.loc[0, "se_lat_p99_ms"] < 1
    assert 0 < noise.loc[0, "se_lat_p50_ms"] < noise.loc[0, "se_lat_p99_ms"] * 3
    assert noise.loc[0, "se_server_cpu_s_per_1k"] < 0.01
    assert math.isnan(noise.loc[0, "se_client_cpu_s_per_1k"])
