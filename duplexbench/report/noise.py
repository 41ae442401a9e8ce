"""How far a single run's figure could move by chance: measured from the run itself.

With repeats, the spread between repeats is the noise and findings quote it.
With one repeat there is no second run to compare with, so the noise is
estimated from inside the point:

- **Latency percentiles**: the distribution-free confidence interval of a
  quantile (order statistics): with n samples the p-quantile's 95 % interval
  runs from rank ``n p - 1.96 sqrt(n p (1-p))`` to ``n p + 1.96 sqrt(n p (1-p))``.
  The relative half-width of that interval is the noise.
- **CPU per message**: the measurement window is cut into blocks of 0.5 s
  (10 sampler ticks: long enough that neighbouring blocks are roughly
  independent); the relative standard error of the mean CPU rate over the
  blocks, times 2 (about 95 %), is the noise.

Byte and request counts are exact counts: no sampling noise (the tie tolerance
floor of findings still applies). Everything here is documented in DESIGN.md
("Confidence").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["BLOCK_S", "Z95", "cpu_noise", "percentile_noise", "point_noise"]

Z95 = 1.96
#: CPU blocks: 10 ticks of the 20 Hz sampler.
BLOCK_S = 0.5


def percentile_noise(values: np.ndarray, percentile: float) -> float:
    """Relative half-width of the 95 % order-statistic interval of a percentile (NaN if n < 2)."""
    values = np.sort(np.asarray(values, dtype=float))
    values = values[~np.isnan(values)]
    n = values.size
    if n < 2:
        return math.nan
    p = percentile / 100
    centre = n * p
    half = Z95 * math.sqrt(n * p * (1 - p))
    lo = values[int(np.clip(math.floor(centre - half), 1, n)) - 1]
    hi = values[int(np.clip(math.ceil(centre + half), 1, n)) - 1]
    mid = values[int(np.clip(math.ceil(centre), 1, n)) - 1]
    if mid <= 0:
        return math.nan
    return float(max(mid - lo, hi - mid) / mid)


def cpu_noise(rows: pd.DataFrame) -> float:
    """2 x relative standard error of the CPU rate over 0.5 s blocks of the measure phase."""
    if rows is None or len(rows) < 4 or "t_s" not in rows:
        return math.nan
    measure = rows[rows["phase"] == "measure"] if "phase" in rows else rows
    if len(measure) < 4:
        return math.nan
    measure = measure.sort_values("t_s")
    column = "cpu_sched_s" if "cpu_sched_s" in measure and measure["cpu_sched_s"].notna().all() \
        else None
    cpu = (measure[column] if column else measure["cpu_user_s"] + measure["cpu_system_s"])
    t = measure["t_s"].to_numpy(dtype=float)
    cpu = cpu.to_numpy(dtype=float)
    edges = np.arange(t[0], t[-1] + 1e-9, BLOCK_S)
    if edges.size < 3:
        return math.nan
    at = np.interp(edges, t, cpu)
    rates = np.diff(at) / BLOCK_S
    mean = rates.mean()
    if mean <= 0 or rates.size < 2:
        return math.nan
    return float(2 * rates.std(ddof=1) / math.sqrt(rates.size) / mean)


def point_noise(summary: pd.DataFrame, samples: pd.DataFrame | None,
                load: pd.DataFrame | None) -> pd.DataFrame:
    """Per summary row: ``noise_<metric>`` relative half-widths (NaN where unknown)."""
    out = pd.DataFrame(index=summary.index)
    for column in ("noise_lat_p50_ms", "noise_lat_p99_ms", "noise_server_cpu_s_per_1k",
                   "noise_client_cpu_s_per_1k"):
        out[column] = np.nan
    keys = ["point", "repeat", "transport"]
    groups_s = dict(tuple(samples.groupby(keys))) if samples is not None and len(samples) and \
        set(keys) <= set(samples.columns) else {}
    groups_l = dict(tuple(load.groupby(keys + ["process"]))) if load is not None and len(load) \
        and set(keys + ["process"]) <= set(load.columns) else {}
    for index, row in summary.iterrows():
        try:
            key = (int(row["point"]), int(row["repeat"]), str(row["transport"]))
        except (TypeError, ValueError):
            continue
        rows = groups_s.get(key)
        if rows is not None and "latency_ms" in rows:
            latency = rows["latency_ms"].to_numpy(dtype=float)
            out.at[index, "noise_lat_p50_ms"] = percentile_noise(latency, 50)
            out.at[index, "noise_lat_p99_ms"] = percentile_noise(latency, 99)
        out.at[index, "noise_server_cpu_s_per_1k"] = cpu_noise(groups_l.get((*key, "server")))
        out.at[index, "noise_client_cpu_s_per_1k"] = cpu_noise(groups_l.get((*key, "loadgen")))
    return out
