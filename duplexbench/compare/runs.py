"""Comparing two runs: the regression gate's verdicts (``python -m duplexbench compare``).

Compares two run directories metric by metric, per transport and load point, and says for each
whether it got better, stayed the same or got worse; exits 1 when a gated metric got worse, so a
CI job fails, and 0 otherwise; 2 when the input cannot be compared (incomplete run, another
schema, no common load point). The statistics live in ``duplexbench.compare.stats``; this module knows
the metrics: which way is bad, how big a change matters, which ones gate (the thresholds and why
are in docs/regression.md, which must change with ``METRICS``).

Load points are matched by their parameters (transport, clients, rate, payload, delay,
keepalive, pattern, upstream), not by their index, so a scenario that gained a point still
compares the ones both runs have. Used directly against a committed baseline, and by the A/B
mode (:mod:`~duplexbench.compare.ab`, ``paired=True``). Repeats whose validity cannot carry a
verdict are left out (:mod:`~duplexbench.compare.comparable`); the verdict table's shape is
:mod:`~duplexbench.compare.model`, its outputs :mod:`~duplexbench.compare.output`, run-level
notes :mod:`~duplexbench.compare.notes`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import SCHEMA_VERSION
from ..measure.results import Run, RunError, is_complete, load_run
from .comparable import ALWAYS_JUDGED, split_repeats
from .disturbed import Disturbed, disturbed_repeats
from .metrics import KEY_COLUMNS, METRICS, PER_REQUEST_BYTES, MetricSpec
from .model import MISSING, UNJUDGED, Comparison, InputError, Row
from .notes import meta_notes, normalisation
from .pairnoise import PairNoise, compare_pair_noise, compare_pooled_noise, pooled_pair_noise
from .stats import (
    WORSE,
    Verdict,
    compare_counts,
    compare_paired,
    compare_repeats,
    compare_samples,
    tail_is_stable,
)

__all__ = ["compare_runs", "resolve_run"]

def resolve_run(path: str | Path, allow_incomplete: bool = False) -> Run:
    """A run directory, or a directory holding exactly one run (or a ``latest`` link)."""
    given = Path(path)
    if not given.exists():
        hint = " (record a baseline with `make baseline`)" if "baseline" in str(given) else ""
        raise InputError(f"{given}: no such directory{hint}")
    if given.is_dir() and not (given / "meta.json").exists():
        if (given / "latest").exists():
            given = given / "latest"
        else:
            runs = sorted(p for p in given.iterdir() if (p / "meta.json").exists())
            if len(runs) != 1:
                what = "no run" if not runs else f"{len(runs)} runs ({', '.join(r.name for r in runs[:5])})"
                raise InputError(f"{path}: holds {what}; name one run directory")
            given = runs[0]
    try:
        run = load_run(given)
    except RunError as exc:
        raise InputError(str(exc)) from None
    version = run.meta.get("schema_version")
    # results.load_run reads every schema up to this one (older columns converted: MB -> MiB,
    # validity classified from the row), so an older baseline still compares.
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise InputError(
            f"{given}: schema mismatch: results schema_version {version!r}, this duplexbench "
            f"reads 1 to {SCHEMA_VERSION}; re-run it (or refresh the baseline with `make baseline`)")
    if not is_complete(run.meta) and not allow_incomplete:
        status, reason = run.meta.get("status"), run.meta.get("reason") or "no reason given"
        raise InputError(
            f"{given}: incomplete run (status {status!r}: {reason}); only complete runs are "
            "compared (--allow-incomplete compares the points it finished)")
    if run.summary.empty:
        raise InputError(f"{given}: summary.csv has no load points")
    return run


def _fmt_key(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value).strip().lower()


def _label(key: dict) -> str:
    """Short load point label: the parameters people read, extras only when set."""
    parts = []
    if key.get("clients"):
        parts.append(f"{key['clients']}c")
    if key.get("rate_msgs_s"):
        parts.append(f"{key['rate_msgs_s']}/s")
    if key.get("payload_bytes"):
        parts.append(f"{key['payload_bytes']}B")
    if key.get("delay_ms") not in ("", "0"):
        parts.append(f"+{key['delay_ms']}ms")
    if key.get("keepalive") in ("false", "0"):
        parts.append("no-keepalive")
    if key.get("pattern") not in ("", "fanout"):
        parts.append(key["pattern"])
    if key.get("upstream") not in ("", "post"):
        parts.append(f"up={key['upstream']}")
    # nginx in the path and browsers as clients (duplexbench/extensions.py) are other points; the
    # native and Locust engines measure the same point, so only "browser" is named.
    if key.get("proxy") not in (None, "", "none"):
        parts.append(f"{key['proxy']} buf={'on' if key.get('proxy_buffering') == 'true' else 'off'}"
                     + (" no-accel" if key.get("proxy_accel_header") == "false" else "")
                     + (" gzip" if key.get("proxy_gzip") == "true" else ""))
    if key.get("engine") == "browser":
        parts.append("browser")
    # Another server shape (workers behind a broker, docs/scaleout.md) is another point.
    if key.get("workers") not in (None, "", "1") or key.get("broker") not in (None, "", "none"):
        parts.append(f"workers={key.get('workers') or '1'}"
                     + (f"+{key['broker']}" if key.get("broker") not in (None, "", "none") else ""))
    return " ".join(parts) or "-"


def _points(run: Run, key_columns: Sequence[str]) -> dict[tuple[str, str], pd.DataFrame]:
    """(transport, point label) -> the summary rows (one per repeat) of that point."""
    out: dict[tuple[str, str], list] = {}
    summary = run.summary
    for index, row in summary.iterrows():
        key = {c: _fmt_key(row.get(c)) for c in key_columns}
        out.setdefault((str(row["transport"]), _label(key)), []).append(index)
    return {k: summary.loc[v] for k, v in out.items()}


SampleIndex = dict[tuple[str, str, str], pd.DataFrame]


def _sample_index(run: Run) -> SampleIndex:
    """samples.parquet split by (transport, point, repeat), keys normalised like the summary's."""
    samples = run.samples()
    if samples.empty:
        return {}
    if "repeat" not in samples.columns:
        samples = samples.assign(repeat=0)
    keys = [samples[c].map(_fmt_key) for c in ("transport", "point", "repeat")]
    return {k: g for k, g in samples.groupby(keys, sort=False)}


def _sample_groups(index: SampleIndex, rows: pd.DataFrame, column: str,
                   scale: float) -> list[np.ndarray] | None:
    """Raw samples of one point, one array per repeat; None when the run has none."""
    groups = []
    for _, row in rows.iterrows():
        repeat = 0 if pd.isna(row.get("repeat")) else row.get("repeat")
        frame = index.get((_fmt_key(row["transport"]), _fmt_key(row["point"]), _fmt_key(repeat)))
        if frame is None or column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if len(values):
            groups.append(values / scale)
    return groups or None


# ---------------------------------------------------------------------------
# Comparing


def _apply_min_change(spec: MetricSpec, min_change: float | None) -> MetricSpec:
    if min_change is None or spec.kind == "count":
        return spec
    return replace(spec, threshold=replace(spec.threshold, rel=min_change / 100.0))


def _split(b_all: pd.DataFrame, c_all: pd.DataFrame, paired: bool):
    """The repeats that can carry a verdict; in paired mode only whole pairs, in repeat order."""
    split = split_repeats(b_all, c_all)
    if paired and not split.why and "repeat" in b_all and "repeat" in c_all:
        # Pairs stay pairs: a repeat left out on one side takes its partner with it.
        common = set(split.base["repeat"]) & set(split.current["repeat"])
        if common:
            split = replace(split, base=split.base[split.base["repeat"].isin(common)].sort_values("repeat"),
                            current=split.current[split.current["repeat"].isin(common)].sort_values("repeat"))
        else:
            split = replace(split, why="no repeat pair comparable on both sides")
    return split


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


#: The per-repeat figure a disturbed repeat is told by: a neighbour's burst moves the
#: latency median of the repeats it overlaps by far more than a change of build does.
DISTURBANCE_METRIC = "lat_p50_ms"


def _disturbed(transport: str, label: str, split) -> list[Disturbed]:
    """The judged repeats of one point (its ``_split``) far from their side's median."""
    if split.why:
        return []
    found: list[Disturbed] = []
    for side, rows in (("baseline", split.base), ("current", split.current)):
        if DISTURBANCE_METRIC in rows:
            labels = (rows["repeat"].map(_fmt_key) if "repeat" in rows
                      else [str(i) for i in range(len(rows))])
            found += disturbed_repeats(_column(rows, DISTURBANCE_METRIC), list(labels),
                                       transport=transport, point=label, side=side,
                                       metric=DISTURBANCE_METRIC)
    return found


def _pair_noise(pairs: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
                specs: Sequence[MetricSpec]) -> dict[str, PairNoise]:
    """Per metric judged against the pairs' noise: the spread of its pair log-ratios, pooled
    over every judged point of the comparison (pairnoise.pooled_pair_noise)."""
    noise = {}
    for spec in specs:
        if spec.paired_floor is None:
            continue
        groups = [(_column(b, spec.name), _column(c, spec.name)) for b, c in pairs
                  if spec.name in b and spec.name in c]
        noise[spec.name] = pooled_pair_noise(groups)
    return noise


def _noise_verdict(spec: MetricSpec, b_rows: pd.DataFrame, c_rows: pd.DataFrame,
                   noise: PairNoise, alpha: float, p_value: float | None = None) -> Verdict | None:
    """The pair-noise verdict of one metric at one point, None when it has no pair."""
    if spec.name not in b_rows or spec.name not in c_rows:
        return None
    b, c = _column(b_rows, spec.name), _column(c_rows, spec.name)
    keep = np.isfinite(b) & np.isfinite(c) & (b > 0) & (c > 0)
    if not keep.any():
        return None
    return compare_pair_noise(b[keep], c[keep], spec.paired_floor, noise, alpha, p_value)


#: The transport column of a verdict over every point together.
ALL_POINTS = "all"


def _pooled_rows(pairs: Sequence[tuple[pd.DataFrame, pd.DataFrame]], specs: Sequence[MetricSpec],
                 noise: dict[str, PairNoise], alpha: float) -> list[Row]:
    """A/B mode: one gating row per pooled metric over every judged point (two or more)."""
    rows = []
    for spec in specs:
        if not spec.pooled or spec.name not in noise:
            continue
        groups = []
        for b, c in pairs:
            if spec.name in b and spec.name in c:
                bv, cv = _column(b, spec.name), _column(c, spec.name)
                keep = np.isfinite(bv) & np.isfinite(cv) & (bv > 0) & (cv > 0)
                if keep.any():
                    groups.append((bv[keep], cv[keep]))
        if len(groups) < 2:
            continue
        verdict = compare_pooled_noise(groups, spec.paired_floor, noise[spec.name], alpha)
        rows.append(Row(ALL_POINTS, f"{len(groups)} points", spec.name, verdict.verdict, True,
                        verdict))
    return rows


def _compare_point(base: SampleIndex, cur: SampleIndex, b_all: pd.DataFrame, c_all: pd.DataFrame,
                   transport: str, label: str, specs: Sequence[MetricSpec], alpha: float,
                   factor: float, paired: bool,
                   noise: dict[str, PairNoise] | None = None,
                   noise_alpha: float | None = None
                   ) -> tuple[list[Row], list[str], list[Disturbed]]:
    """Rows for one load point, notes (left-out repeats, tails not gated, disturbed repeats)
    and its disturbed repeats (disturbed.py).

    ``noise`` (paired mode): the pooled pair noise of the metrics that are judged against it;
    ``noise_alpha``: the level those per-point verdicts are judged at (``point_alpha``).
    """
    noise = noise or {}
    noise_alpha = alpha if noise_alpha is None else noise_alpha
    split = _split(b_all, c_all, paired)
    notes = [f"{transport} {label}: {n}" for n in split.notes]
    disturbed = _disturbed(transport, label, split)
    notes += [d.describe() for d in disturbed]
    rows: dict[str, Row] = {}

    def values(frame: pd.DataFrame, spec: MetricSpec, scale: float) -> np.ndarray:
        v = pd.to_numeric(frame[spec.name], errors="coerce").to_numpy(dtype=float)
        return v / scale if spec.latency else v

    def judged_on(spec: MetricSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
        if spec.name in ALWAYS_JUDGED or split.why:  # unjudged rows still show all values
            return b_all, c_all
        return split.base, split.current

    specs = [s for s in specs if s.name in b_all or s.name in c_all or s.kind == "samples"]
    # Latency quantiles of one samples column share one bootstrap (same resamples).
    by_column: dict[str, list[MetricSpec]] = {}
    for spec in specs:
        if spec.kind == "samples":
            by_column.setdefault(spec.column, []).append(spec)
    for column, group in by_column.items():
        b_rows, c_rows = judged_on(group[0])
        b_groups = _sample_groups(base, b_rows, column, 1.0)
        c_groups = _sample_groups(cur, c_rows, column, factor)
        if b_groups is None or c_groups is None:
            continue  # falls back to the per-repeat summary values below
        wanted = [(s.quantile, s.threshold) for s in group]
        if paired and len(b_groups) == len(c_groups):  # A/B: repeat i of both sides adjacent
            verdicts = compare_paired(b_groups, c_groups, wanted, alpha=alpha)
        else:
            verdicts = compare_samples(b_groups, c_groups, wanted, alpha=alpha)
        for spec, verdict in zip(group, verdicts):
            gated, note = spec.gate, ""
            if paired and spec.name in noise and not split.why:
                # The pairs' medians against their measured noise; Mann-Whitney stays.
                judged = _noise_verdict(spec, b_rows, c_rows, noise[spec.name], noise_alpha,
                                        verdict.p_value)
                if judged is not None:
                    verdict = replace(judged, baseline=verdict.baseline,
                                      current=verdict.current, delta=verdict.delta,
                                      n_baseline=verdict.n_baseline, n_current=verdict.n_current)
                    note = ""  # the noise is one note for the whole comparison
            if paired and spec.tail:
                # Both sides: noise that hits the current side in 2 of 3 pairs (seen: p99
                # x25 on the same build while a neighbour ran 10k connections) leaves its
                # repeats far apart; a real tail change moves all of them together.
                b_ok, b_text = tail_is_stable(b_groups, spec.quantile, spec.threshold)
                c_ok, c_text = tail_is_stable(c_groups, spec.quantile, spec.threshold, "current")
                gated = b_ok and c_ok
                note = (f"tail {'gated' if gated else 'not gated (unstable)'}: "
                        f"{b_text}; {c_text}")
            rows[spec.name] = Row(transport, label, spec.name, verdict.verdict, gated, verdict, note)

    for spec in specs:
        if spec.name in rows:
            continue
        b_rows, c_rows = judged_on(spec)
        if spec.name not in b_rows or spec.name not in c_rows:
            rows[spec.name] = Row(transport, label, spec.name, MISSING, spec.gate, note="no column")
            continue
        b, c = values(b_rows, spec, 1.0), values(c_rows, spec, factor)
        b, c = b[np.isfinite(b)], c[np.isfinite(c)]
        if len(b) == 0 and len(c) == 0:
            continue  # reported by neither run (an optional column): nothing to say
        if len(b) == 0 or len(c) == 0:
            side = "baseline" if len(b) == 0 else "current"
            rows[spec.name] = Row(transport, label, spec.name, MISSING, spec.gate,
                                  note=f"no value in {side}")
            continue
        if spec.kind == "count":
            b_tot = pd.to_numeric(b_rows.get("expected"), errors="coerce")
            c_tot = pd.to_numeric(c_rows.get("expected"), errors="coerce")
            verdict = compare_counts(b, c, None if b_tot is None else float(b_tot.sum()),
                                     None if c_tot is None else float(c_tot.sum()),
                                     spec.threshold.higher_is_worse)
            note = ""
        else:
            threshold, note = spec.threshold, ""
            shift = _batching_shift(spec, b_rows, c_rows)
            if abs(shift) >= 1.0:  # worth a note only when it can change a verdict
                # Judged net of batching: the current repeats as if they had batched like the
                # baseline's. Signed, so fewer requests per message cannot hide a heavier
                # message (seen: a 100 B pad during a stall that batched 26 % more). The
                # slack covers per-message framing inside the per-request estimate.
                threshold = replace(threshold, abs=threshold.abs + BATCHING_SLACK * abs(shift))
                shown = compare_repeats(b, c, spec.threshold)
                verdict = compare_repeats(b, c - shift, threshold)
                verdict = replace(shown, verdict=verdict.verdict, reason=verdict.reason)
                note = (f"judged net of batching: {shift:+.1f} B per message expected from the "
                        "change in requests per message")
            else:
                verdict = compare_repeats(b, c, threshold)
            if spec.kind == "samples":
                note = "from per-repeat summary (no samples)"
        gated = spec.gate
        if paired and spec.name in noise and not split.why and spec.kind == "repeats":
            judged = _noise_verdict(spec, b_rows, c_rows, noise[spec.name], noise_alpha)
            if judged is not None:
                verdict, gated, note = judged, True, ""
        rows[spec.name] = Row(transport, label, spec.name, verdict.verdict, gated, verdict, note)
    out = [rows[s.name] for s in specs if s.name in rows]
    if split.why:  # no comparable repeat on a side: show the values, call nothing
        out = [r if r.metric in ALWAYS_JUDGED or r.status == MISSING
               else replace(r, status=UNJUDGED, why=split.why) for r in out]
        notes.append(f"{transport} {label}: not judged ({split.why}): its figures describe "
                     "something other than the server under test")
    if split.broken:
        out.append(Row(transport, label, "validity", WORSE, True, None, split.broken))
    return out, notes, disturbed


#: Share of a batching shift added to a byte threshold: a batched response's per-message
#: framing sits in the per-request estimate, so the shift is not exact.
BATCHING_SLACK = 0.10


def _batching_shift(spec: MetricSpec, b_rows: pd.DataFrame, c_rows: pd.DataFrame) -> float:
    """Bytes per message the current run should differ by from a change in batching alone.

    Baseline bytes per request (its overhead / its requests per message) times the signed
    change in requests per message: each request costs the same, only amortised differently.
    A 100-byte pad is per message and stays visible either way; more requests per message are
    judged by ``http_requests_per_msg`` itself.
    """
    column = PER_REQUEST_BYTES.get(spec.name)
    if column is None or "http_requests_per_msg" not in b_rows or column not in b_rows:
        return 0.0
    if "http_requests_per_msg" not in c_rows:
        return 0.0

    def mean(frame: pd.DataFrame, col: str) -> float:
        return float(pd.to_numeric(frame[col], errors="coerce").mean())

    b_req, c_req = mean(b_rows, "http_requests_per_msg"), mean(c_rows, "http_requests_per_msg")
    per_request = mean(b_rows, column) / b_req if b_req > 0 else math.nan
    shift = (c_req - b_req) * per_request
    return shift if math.isfinite(shift) else 0.0


def point_alpha(alpha: float, points: int) -> float:
    """The level each point's own pair-noise verdicts are judged at: ``alpha`` / points.

    An A/B run asks the same question (did server CPU per delivery, did the median latency
    rise?) of every point, so judged each at ``alpha`` a run of T points would raise T times the
    false alarms of one (measured: 2 A/A false alarms in 10 gate-power rounds at 0.01 per
    point, one per-transport CPU row and one latency median). Bonferroni over the points keeps
    the gate's false-alarm rate per metric at ``alpha``; the pooled row over every point (a
    slower fan-out costs every transport) is one question and keeps ``alpha``, so the power of
    the gate for a change of every transport's cost is not spent.
    """
    return alpha / max(1, points)


def compare_runs(base: Run, cur: Run, *, alpha: float = 0.01, min_change: float | None = None,
                 normalize: bool = False, paired: bool = False) -> Comparison:
    """Every metric of every load point both runs have; notes for everything else.

    ``paired`` (A/B mode, interleaved runs): repeat i of both sides ran back to back, so
    latency consistency is judged pair by pair (stats.compare_paired), and p90/p99 gate where
    both sides' repeats show them stable (stats.tail_is_stable).
    """
    notes: list[str] = []
    specs = [_apply_min_change(s, min_change) for s in METRICS]
    factor = 1.0
    if normalize:
        try:
            factor, note = normalisation(base, cur)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        notes.append(note)
    keys = [c for c in KEY_COLUMNS if c in base.summary and c in cur.summary]
    b_points, c_points = _points(base, keys), _points(cur, keys)
    common = [k for k in b_points if k in c_points]
    if not common:
        raise InputError(
            "no common load points: baseline has "
            f"{', '.join(f'{t} {p}' for t, p in b_points) or 'none'}; current has "
            f"{', '.join(f'{t} {p}' for t, p in c_points) or 'none'}")
    b_index, c_index = _sample_index(base), _sample_index(cur)
    noise: dict[str, PairNoise] = {}
    judged_pairs: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    if paired:
        splits = [_split(b_points[k], c_points[k], True) for k in common]
        judged_pairs = [(x.base, x.current) for x in splits if not x.why]
        noise = _pair_noise(judged_pairs, specs)
        notes += [f"{name} judged against the pairs' noise: {n.describe()}"
                  for name, n in noise.items()]
    noise_alpha = point_alpha(alpha, len(judged_pairs))
    if noise and len(judged_pairs) > 1:
        notes.append(f"each point's pair-noise verdicts at alpha {noise_alpha:.2g} (= {alpha:g} / "
                     f"{len(judged_pairs)} points, so that {len(judged_pairs)} points do not raise "
                     f"the false alarms {len(judged_pairs)}-fold); the all-points rows at {alpha:g}")
    rows: list[Row] = []
    disturbed: list[Disturbed] = []
    for transport, label in sorted(set(b_points) | set(c_points)):
        if (transport, label) not in common:
            side = "baseline" if (transport, label) in b_points else "current"
            rows.append(Row(transport, label, "*", MISSING, False, note=f"only in {side}"))
            notes.append(f"{transport} {label}: only in the {side} run, not compared")
            continue
        b_rows, c_rows = b_points[(transport, label)], c_points[(transport, label)]
        point_rows, point_notes, found = _compare_point(
            b_index, c_index, b_rows, c_rows, transport, label, specs, alpha, factor, paired,
            noise, noise_alpha)
        rows += point_rows
        notes += point_notes
        disturbed += found
        if min(len(b_rows), len(c_rows)) < 2:
            notes.append(f"{transport} {label}: one repeat on a side: run-to-run noise is not "
                         "estimated, verdicts may be over-confident (use repeats >= 3)")
    rows += _pooled_rows(judged_pairs, specs, noise, alpha)
    notes += [f"{r.transport} {r.point} {r.metric}: {r.note}" for r in rows
              if r.note and r.metric != "*"]
    notes += meta_notes(base, cur, normalize)
    multi = len({label for _, label in common}) > 1
    return Comparison(base, cur, tuple(rows), tuple(dict.fromkeys(notes)), multi, paired,
                      tuple(disturbed))
