"""The warnings a report reader must not miss, from the run's meta and its numbers.

Apart from findings.py (sentences comparing transports): a warning is about one run's
trustworthiness (an incomplete run, lost or reordered messages, a saturated load
generator, too few samples, noisy repeats), shown at the top of the report, loud ones in red.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..measure.validity import SATURATED_PCT, loadgen_pct_per_core
from . import colors, topology
from .load import ReportRun, is_complete

__all__ = ["MIN_SAMPLES", "NOISY_CV", "Warning_", "run_warnings"]

#: p99.9 needs ~1,000 samples before it is more than the maximum in disguise.
MIN_SAMPLES = 1000
#: Words that make a warning from metrics.py loud (a result not to trust as it stands).
_LOUD = ("LOST", "load generator used", "errors", "reconnects", "no latency samples")
#: Repeats whose median latency spreads by more than this are called noisy (pyperf: 10 %).
NOISY_CV = 0.10


@dataclass(frozen=True)
class Warning_:
    """A warning for the top of the report; `loud` ones are shown in red."""

    text: str
    loud: bool = False


def _name(transport: str) -> str:
    return colors.label(transport)


def _where_row(row: pd.Series) -> str:
    shape = topology.shape_of(row)
    return (f"{_name(row['transport'])} at {row['clients']:,.0f} subscribers, "
            f"{row['rate_msgs_s']:,.4g} messages/s"
            + ("" if shape == (1, "none") else f", {topology.describe(*shape)}"))


def run_warnings(run: ReportRun) -> list[Warning_]:
    """Warnings from the run itself plus those computed from its numbers."""
    out: list[Warning_] = []
    if not is_complete(run.meta):
        out.append(Warning_(f"Run status is {run.meta.get('status', 'unknown')!r}"
                            + (f": {run.meta['reason']}" if run.meta.get("reason") else "")
                            + ". Figures and findings cover only the points that finished.", True))
    out += [Warning_(str(text)) for text in run.meta.get("warnings") or []]
    summary = run.summary
    expect_loss = bool(((run.meta.get("scenario") or {}).get("parsed") or {}).get("expect_loss"))
    for _, row in summary.iterrows():
        where = _where_row(row)
        # metrics.py writes its warnings "; "-joined; sample-count ones are summarised below.
        pieces = [p.strip() for p in str(row["warnings"]).split("; ") if p.strip()]
        for piece in pieces:
            if "maximum in disguise" not in piece:
                out.append(Warning_(f"{where}: {piece}", any(k in piece for k in _LOUD)))
        if row["status"] and row["status"] not in ("ok", "complete", "done", "lost"):
            out.append(Warning_(f"{where}: point status {row['status']!r}.", True))
        if row["lost"] > 0 and not expect_loss and not any(p.startswith("LOST") for p in pieces):
            out.append(Warning_(
                f"LOST MESSAGES: {where} lost {row['lost']:,.0f} of "
                f"{row['expected']:,.0f} expected messages; latency percentiles leave them out.",
                True))
        for kind in ("duplicated", "reordered"):
            if row[kind] > 0:
                out.append(Warning_(f"{where}: {row[kind]:,.0f} messages {kind}.", True))
        pct = loadgen_pct_per_core(row)
        if pct > SATURATED_PCT and not any("load generator used" in p for p in pieces):
            out.append(Warning_(
                f"SATURATED LOAD GENERATOR: {where} used {pct:.0f}% of its core(s): latency "
                "and throughput there measure the client, not the server.", True))
    few = summary[summary["lat_samples"] < MIN_SAMPLES]
    if len(few):
        out.append(Warning_(
            f"{len(few)} load point(s) have fewer than {MIN_SAMPLES:,} latency samples "
            f"(smallest: {few['lat_samples'].min():,.0f}): their p99.9 is close to the maximum."))
    keys = ["transport", "clients", "rate_msgs_s", "payload_bytes", "delay_ms"]
    # Another server shape (2 workers behind Redis) at the same load is not a repeat.
    shaped = topology.tidy(summary)
    repeats = shaped.groupby(keys + list(topology.COLUMNS), dropna=False)["lat_p50_ms"].agg(
        ["count", "mean", "std"])
    noisy = repeats[(repeats["count"] > 1) & (repeats["std"] > NOISY_CV * repeats["mean"])]
    for key, row in noisy.iterrows():
        out.append(Warning_(
            f"NOISY: {_name(key[0])} at {key[1]:,.0f} subscribers"
            + ("" if (key[-2], key[-1]) == (1, "none") else f" ({topology.describe(*key[-2:])})")
            + ": median latency varies by "
            f"{100 * row['std'] / row['mean']:.0f}% across {row['count']:.0f} repeats (>10%); "
            "quiet the machine or add repeats before trusting a difference.", True))
    return list(dict.fromkeys(out))  # keep order, drop repeats of the same text
