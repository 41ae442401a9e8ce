"""What a rerun of the same build would measure: the interval a finding states.

A reader acts on a finding as if running the benchmark again would say the same,
so the interval a report states is a **rerun interval**: where the figure (or
ratio) of another run of this build, on this machine, would fall, 99 times in 100.
It is not a confidence interval of a "true" value, and it is wider than one:

- one run's figure moves by this run's own sampling (report/noise.py: the block
  bootstrap over published messages, ``se_<metric>``) and by what differs between
  runs, which no single run can see (the machine's other load, where the
  allocator put things, which core's caches were warm): ``RERUN_SD`` per metric
  and transport, measured by ``python -m duplexbench reproduce``
  (report/calibration.py);
- a rerun has both errors again, so the difference of two runs has twice the
  variance of one: the interval is ``value x exp(±Z sqrt(2 var))`` on the log
  scale (figures are positive and compared as ratios);
- with repeats, each repeat is a fresh server and load generator: the variance of
  one repeat is the larger of the spread between the repeats and the model above,
  and the median of r repeats has about 1/r of it (a rerun has r repeats too).

Memory per connection is a slope (report/derived.py) with its standard error;
it gets the same treatment on the log scale once the slope is clearly above its
error (``resolved``), and no interval (so no ratio) before.

Ratios of two transports: their own sampling errors add (separate processes,
separate times), but what a rerun changes moves both transports of a run together
(a slower machine, a busier neighbour), so a ratio's rerun part is measured on
ratios: ``RATIO_RERUN_SD`` (report/calibration.py), not the two transports'
``RERUN_SD`` added (that made a server-CPU ratio that held 2.5-5.1x in five runs a
tie at 0.8-13x). A ratio whose interval reaches 1 is a tie, not a finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .calibration import ratio_rerun_sd, rerun_sd

__all__ = [
    "LEVEL",
    "Z",
    "Spread",
    "spread_of",
    "ratio_interval",
    "ratio_var",
    "repeats_to_resolve",
    "RSS_SE_COLUMN",
    "SE_COLUMNS",
]

#: The share of reruns a stated interval should hold (two-sided).
LEVEL = 0.99
Z = 2.5758
#: metric column -> its within-run standard error column (log scale; report/noise.py
#: computes them).
SE_COLUMNS = {
    "lat_p50_ms": "se_lat_p50_ms",
    "lat_p99_ms": "se_lat_p99_ms",
    "server_cpu_s_per_1k": "se_server_cpu_s_per_1k",
    "client_cpu_s_per_1k": "se_client_cpu_s_per_1k",
}
#: report/derived.py's standard error of the memory-per-connection slope.
RSS_SE_COLUMN = "server_rss_kib_per_conn_se"


@dataclass(frozen=True)
class Spread:
    """One transport's figure at one point, and how far a rerun's could be from it."""

    value: float
    var: float  # log-scale variance of one run's figure (repeats folded in); NaN = unknown
    repeats: int = 1
    resolved: bool = True  # False: a slope within its own error (no interval, no ratio)
    floor: float = 0.0  # the part of ``var`` that is RERUN_SD (the rest: this run's own)
    metric: str = ""

    @property
    def own_var(self) -> float:
        """This run's own sampling variance (with repeats: their spread) of the figure."""
        return max(0.0, self.var - self.floor)

    def interval(self, z: float = Z) -> tuple[float, float]:
        """Where a rerun's figure would fall; (nan, nan) when unknown or unresolved."""
        if not self.resolved or math.isnan(self.var) or not self.value > 0:
            return math.nan, math.nan
        half = z * math.sqrt(2 * self.var)
        return self.value * math.exp(-half), self.value * math.exp(half)


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def spread_of(rows: pd.DataFrame, metric: str, value: float) -> Spread:
    """The spread of ``value`` (the median over ``rows``, one row per repeat of one
    transport at one point, before aggregation) for ``metric``."""
    transport = str(rows["transport"].iloc[0]) if "transport" in rows.columns and len(rows) \
        else "*"
    floor = rerun_sd(metric, transport) ** 2
    n = max(1, len(rows))
    if metric == "server_rss_kib_per_conn":
        se = _num(rows[RSS_SE_COLUMN])[0] if RSS_SE_COLUMN in rows.columns and len(rows) \
            else math.nan
        # Resolved: the slope is above Z of its own errors, so its log is meaningful.
        resolved = value > 0 and math.isfinite(se) and value > Z * math.sqrt(2) * se
        var = (se / value) ** 2 + floor if resolved else math.nan
        return Spread(value, var, 1, resolved, floor, metric)
    column = SE_COLUMNS.get(metric)
    if column is not None:
        se = _num(rows[column]) if column in rows.columns else np.full(n, math.nan)
        if np.isnan(se).all():
            return Spread(value, math.nan, n, metric=metric)  # lacks what the error needs
        within = float(np.nanmean(se ** 2))
    else:
        within = 0.0  # counts (bytes, requests): no sampling error, only run-to-run
    model = within + floor
    values = _num(rows[metric]) if metric in rows.columns else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size >= 2:
        model = max(model, float(np.var(np.log(values), ddof=1)))
    r = values.size if values.size >= 2 else 1
    return Spread(value, model / r, r, floor=floor / r, metric=metric)


def ratio_var(best: Spread, worst: Spread) -> float:
    """The log-scale variance of one run's worst/best ratio: both figures' own error
    plus the rerun part measured on ratios (over the repeats); NaN when unknown."""
    if math.isnan(best.var) or math.isnan(worst.var):
        return math.nan
    metric = best.metric or worst.metric
    sd = ratio_rerun_sd(metric)
    if sd is None:  # no ratio calibration for this metric: the transports' parts add
        return best.var + worst.var
    return best.own_var + worst.own_var + sd * sd / max(1, min(best.repeats, worst.repeats))


def ratio_interval(best: Spread, worst: Spread, z: float = Z) -> tuple[float, float]:
    """Where a rerun's worst/best ratio would fall; (nan, nan) when unknown."""
    if not (best.resolved and worst.resolved) or math.isnan(best.var) or math.isnan(worst.var) \
            or not best.value > 0 or not worst.value > 0:
        return math.nan, math.nan
    ratio = worst.value / best.value
    half = z * math.sqrt(2 * ratio_var(best, worst))
    return ratio * math.exp(-half), ratio * math.exp(half)


def repeats_to_resolve(best: Spread, worst: Spread, z: float = Z) -> int | None:
    """Repeats per point that would put 1 outside the ratio's interval, if the ratio
    held: each repeat's variance over r. None when it cannot be said."""
    if math.isnan(best.var) or math.isnan(worst.var) or not best.value > 0:
        return None
    log_ratio = math.log(worst.value / best.value)
    if log_ratio <= 0:
        return None
    per_repeat = ratio_var(best, worst) * min(best.repeats, worst.repeats)
    return max(2, math.ceil(2 * z * z * per_repeat / log_ratio ** 2))
