"""The noise a single run measures of itself: percentile intervals and CPU block errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from duplexbench.report.noise import cpu_noise, percentile_noise, point_noise


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


def test_cpu_noise_from_block_rates():
    steady = cpu_noise(_load([0.5] * 8))
    bursty = cpu_noise(_load([0.1, 0.9] * 4))
    assert steady < 0.01 < bursty
    assert math.isnan(cpu_noise(_load([0.5])))  # one block: no estimate


def test_point_noise_per_row():
    summary = pd.DataFrame({"point": [0], "repeat": [0], "transport": ["sse"]})
    samples = pd.DataFrame({"point": 0, "repeat": 0, "transport": "sse",
                            "latency_ms": np.linspace(1, 2, 1000)})
    load = _load([0.5] * 8).assign(point=0, repeat=0, transport="sse", process="server")
    noise = point_noise(summary, samples, load)
    assert 0 < noise.loc[0, "noise_lat_p99_ms"] < 0.05
    assert noise.loc[0, "noise_server_cpu_s_per_1k"] < 0.01
    assert math.isnan(noise.loc[0, "noise_client_cpu_s_per_1k"])
