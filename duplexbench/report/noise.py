"""How far a single run's figure could move by chance: measured from the run itself.

A finding is acted on as if a rerun would say the same, so every figure needs
the spread of what it is computed from, measured in the run. Deliveries are
not independent: in a fan-out one stall of the server or the machine delays
every subscriber's copy of the same messages, and the next messages behind
them. Treating the 60,000 deliveries of a point as independent draws (the 95 %
order-statistic interval of a percentile) gave p99 intervals of a few percent
while reruns moved p99 by 2-5x (issue 20). So the unit of resampling here is a
stretch of consecutive *published messages*, with every delivery of them:

- **Latency percentiles**: a circular moving-block bootstrap (Politis and
  Romano) over the messages' intended send times. The window is cut into
  units of ``BLOCK_S / UNITS_PER_BLOCK``; a replicate draws blocks of
  ``BLOCK_S`` (any start, wrapping at the end) until it has as many units as
  the window, and takes the nearest-rank percentile of their deliveries.
  ``BLOCK_S`` = 1 s: measured on ``make bench`` runs (docs/DESIGN.md,
  "Confidence"), the per-message latency's autocorrelation is mostly below
  0.2 by 0.25 s, so 1 s blocks keep a stall and its aftermath together while a
  6 s window still has six blocks' worth of variety (a level that drifts across
  the whole window is left to the between-run part, report/intervals.py). A window shorter than
  ``MIN_BLOCKS`` blocks gets shorter blocks (a 1 s window, four of 0.25 s).
- **CPU per message**: the same bootstrap over the sampler's ticks of the
  measurement window (the CPU each tick added, over the time it spanned),
  blocks of ``BLOCK_S`` too.

The result is the log-scale standard error of the figure (sd of the log of the
replicates): ``se_<metric>`` per summary row. Byte and request counts are exact
counts (se 0). What a rerun adds beyond this run's own sampling is not in here:
report/intervals.py combines both. ``percentile_noise`` (the order-statistic
interval) stays for the claims, which speak about the run's own distribution.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .derived import combine
from .intervals import SE_COLUMNS

__all__ = [
    "BLOCK_S",
    "UNITS_PER_BLOCK",
    "N_BOOT",
    "Z95",
    "SE_COLUMNS",
    "block_counts",
    "bootstrap_percentile",
    "percentile_se",
    "cpu_se",
    "percentile_noise",
    "point_noise",
    "analysed_frame",
]

Z95 = 1.96
#: Block length of the bootstrap, seconds of published messages (and of CPU ticks).
BLOCK_S = 1.0
#: Fewest blocks in a window: shorter windows get shorter blocks.
MIN_BLOCKS = 4
#: Resolution of a block: a block can start at any 1/20 of its length.
UNITS_PER_BLOCK = 20
#: Replicates: the log-sd of 300 replicates is within ~8 % of its limit.
N_BOOT = 300
#: A fixed seed: the same run gives the same report.
SEED = 20



def _block(block_s: float, span_s: float) -> float:
    """The block length for a window of ``span_s``: ``block_s``, shortened so that a
    short window still has ``MIN_BLOCKS`` blocks (one block would resample the whole
    window every time and report no error at all)."""
    return min(block_s, span_s / MIN_BLOCKS) if span_s > 0 else block_s


def block_counts(n_units: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """How often each unit is drawn by one circular moving-block replicate."""
    block = max(1, min(block, n_units))
    starts = rng.integers(0, n_units, size=math.ceil(n_units / block))
    drawn = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n_units] % n_units
    return np.bincount(drawn, minlength=n_units)


def bootstrap_percentile(values: np.ndarray, unit: np.ndarray, percentiles,
                         block: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """Replicates (n_boot x len(percentiles)) of nearest-rank percentiles, resampling
    blocks of ``block`` units.

    ``unit[i]`` (0..n_units-1) is the stretch of published messages delivery ``i``
    belongs to; all deliveries of a unit move together. One set of draws serves
    every percentile asked for.
    """
    percentiles = np.atleast_1d(np.asarray(percentiles, dtype=float))
    values = np.asarray(values, dtype=float)
    unit = np.asarray(unit, dtype=np.int64)
    keep = ~np.isnan(values)
    values, unit = values[keep], unit[keep]
    if values.size < 2:
        return np.empty((0, percentiles.size))
    unit = unit - unit.min()
    n_units = int(unit.max()) + 1
    order = np.argsort(values, kind="stable")
    ranked, ranked_unit = values[order], unit[order]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, percentiles.size))
    for i in range(n_boot):
        cumulative = np.cumsum(block_counts(n_units, block, rng)[ranked_unit])
        ranks = np.maximum(np.ceil(percentiles / 100 * cumulative[-1]), 1)
        at = np.minimum(np.searchsorted(cumulative, ranks), ranked.size - 1)
        out[i] = ranked[at]
    return out


def _log_sd(replicates: np.ndarray) -> float:
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size < 2 or (replicates <= 0).any():
        return math.nan
    return float(np.log(replicates).std(ddof=1))


def percentile_se(latency_ms: np.ndarray, recv_s: np.ndarray, percentiles=(50, 99),
                  block_s: float = BLOCK_S) -> np.ndarray:
    """Log-scale standard errors of latency percentiles (block bootstrap over messages).

    A delivery's message is found by its intended send time (``recv_s`` minus the
    latency, both from the window's start): every subscriber's copy of one message
    has the same one, so it lands in the same unit.
    """
    percentiles = np.atleast_1d(np.asarray(percentiles, dtype=float))
    latency_ms = np.asarray(latency_ms, dtype=float)
    intended = np.asarray(recv_s, dtype=float) - latency_ms / 1000
    ok = np.isfinite(latency_ms) & np.isfinite(intended)
    if ok.sum() < 2:
        return np.full(percentiles.size, math.nan)
    span = float(intended[ok].max() - intended[ok].min())
    width = _block(block_s, span) / UNITS_PER_BLOCK
    unit = np.floor((intended[ok] - intended[ok].min()) / width).astype(np.int64)
    replicates = bootstrap_percentile(latency_ms[ok], unit, percentiles, UNITS_PER_BLOCK)
    return np.array([_log_sd(replicates[:, j]) for j in range(percentiles.size)])


def cpu_se(rows: pd.DataFrame | None, block_s: float = BLOCK_S) -> float:
    """Log-scale standard error of a process's CPU rate over the measurement window.

    The window's sampler ticks are the units (CPU added, time spanned); replicates
    draw blocks of ``block_s`` of consecutive ticks. Deliveries per second are fixed
    by the open-loop schedule, so the CPU rate's error is CPU per message's.
    """
    if rows is None or len(rows) < 4 or "t_s" not in rows:
        return math.nan
    measure = rows[rows["phase"] == "measure"] if "phase" in rows else rows
    if len(measure) < 4:
        return math.nan
    measure = measure.sort_values("t_s")
    sched = "cpu_sched_s" in measure and measure["cpu_sched_s"].notna().all()
    cpu = measure["cpu_sched_s"] if sched else measure["cpu_user_s"] + measure["cpu_system_s"]
    t = measure["t_s"].to_numpy(dtype=float)
    dcpu, dt = np.diff(cpu.to_numpy(dtype=float)), np.diff(t)
    if dt.sum() <= 0 or dcpu.sum() <= 0:
        return math.nan
    per_block = max(1, round(_block(block_s, float(dt.sum())) / float(np.median(dt))))
    rng = np.random.default_rng(SEED)
    rates = np.empty(N_BOOT)
    for i in range(N_BOOT):
        counts = block_counts(dt.size, per_block, rng)
        rates[i] = (counts * dcpu).sum() / (counts * dt).sum()
    return _log_sd(rates)


def percentile_noise(values: np.ndarray, percentile: float) -> float:
    """Relative half-width of the 95 % order-statistic interval of a percentile (NaN if n < 2).

    Deliveries taken as independent: right for what one run's distribution says
    (the claims), too narrow for what a rerun would measure (see the module text).
    """
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


def point_noise(summary: pd.DataFrame, samples: pd.DataFrame | None,
                load: pd.DataFrame | None) -> pd.DataFrame:
    """Per summary row: ``se_<metric>`` log-scale standard errors (NaN where unknown)."""
    out = pd.DataFrame(index=summary.index)
    for column in SE_COLUMNS.values():
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
        if rows is not None and {"latency_ms", "recv_s"} <= set(rows.columns):
            latency = rows["latency_ms"].to_numpy(dtype=float)
            recv = rows["recv_s"].to_numpy(dtype=float)
            se50, se99 = percentile_se(latency, recv, (50, 99))
            out.at[index, "se_lat_p50_ms"], out.at[index, "se_lat_p99_ms"] = se50, se99
        out.at[index, "se_server_cpu_s_per_1k"] = cpu_se(groups_l.get((*key, "server")))
        out.at[index, "se_client_cpu_s_per_1k"] = cpu_se(groups_l.get((*key, "loadgen")))
    return out


def analysed_frame(run) -> pd.DataFrame:
    """A run's derived rows (report/derived.py) with each row's ``se_<metric>`` beside them."""
    frame = combine([run])
    if frame.empty:
        return frame
    noise = point_noise(run.summary, run.samples(), run.load())
    return pd.concat([frame, noise.set_index(frame.index)], axis=1)
