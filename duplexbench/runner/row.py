"""A point's summary row, assembled in one place: the outcome, then the extensions' parts.

The order is fixed, so every row reads the same way whatever a point had:

1. the base row: :func:`~duplexbench.measure.metrics.summarize_point` for a measured
   point (every ``SUMMARY_COLUMNS`` figure, status, validity, warnings), or
   :func:`failed_base` for a point that produced no measurement (figures empty,
   status ``failed``, the reason as its warning);
2. every extension's ``contribute`` in the run's order (its columns; faults judge the
   status anew), then every extension's ``notes`` (warnings);
3. the harness's own note: lost messages where the scenario expects none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from .. import procs
from ..measure.metrics import summarize_point
from ..measure.results import LOAD_COLUMNS, SUMMARY_COLUMNS
from ..measure.series import merge_generations
from ..measure.validity import classify
from .extension import PointContext, PointData, PointExtension
from .outcome import num

__all__ = ["assemble", "failed_base", "load_frame", "measured_base"]


def load_frame(point: Any, samples: list) -> pd.DataFrame:
    """The point's process samples as load/ rows; restarted processes (``server@N``) merged
    back into one continuous series."""
    rows = procs.samples_to_rows(samples, point=point.index, repeat=point.repeat,
                                 transport=point.transport)
    return merge_generations(pd.DataFrame(rows, columns=list(LOAD_COLUMNS)))


def failed_base(run: Any, point: Any, reason: str) -> dict:
    """A row that cannot be mistaken for a measurement: figures empty, status failed.

    ``run`` gives the run's identity (run_id, scenario, engine, layout: a Session).
    """
    row: dict[str, Any] = {column: None for column in SUMMARY_COLUMNS}
    scenario = run.scenario
    row.update(
        run_id=run.run_id, scenario=scenario.name, engine=run.engine,
        transport=point.transport, point=point.index, repeat=point.repeat,
        clients=point.clients, rate_msgs_s=point.rate, payload_bytes=point.payload_bytes,
        delay_ms=point.delay_ms, keepalive=point.keepalive,
        pattern=getattr(point, "pattern", "") or scenario.pattern,
        workers=point.workers, broker=point.broker,
        upstream=scenario.upstream, duration_s=scenario.duration_s,
        status="failed", warnings=reason, loadgen_procs=run.layout.procs,
        loadgen_cores=run.layout.cores,
    )
    judged = classify(row)
    row.update(validity=judged.validity, validity_notes=judged.notes)
    return row


def measured_base(run: Any, point: Any, data: PointData) -> tuple[dict, pd.DataFrame]:
    """The measured row and the samples.parquet rows (raises on a harness bug)."""
    return summarize_point(
        run_id=run.run_id, scenario=run.scenario, point=point, engine=run.engine,
        counters=data.counters, samples=data.samples, load=data.load,
        loadgen_procs=run.layout.procs, loadgen_cores=run.layout.cores,
        loadgen_hint=run.layout.hint,
    )


def _split(text: Any) -> list[str]:
    return [t for t in str(text or "").split("; ") if t]


def assemble(base: dict, ctx: PointContext, data: PointData | None,
             extensions: Sequence[PointExtension], *, expect_loss: bool) -> dict:
    """The row: ``base``, the extensions' columns, then their notes and the harness's."""
    row = dict(base)
    for extension in extensions:
        row.update(extension.contribute(ctx, row, data))
    notes: list[str] = []
    for extension in extensions:
        notes += extension.notes(ctx, row, data)
    if notes:
        row["warnings"] = "; ".join(_split(row.get("warnings")) + notes)
    lost = num(row.get("lost")) or 0
    texts = _split(row.get("warnings"))
    if str(row.get("status", "ok")) != "failed" and lost > 0 and not expect_loss \
            and not any("LOST" in t.upper() for t in texts):
        row["warnings"] = "; ".join(texts + [f"LOST {lost:.0f} messages: the scenario expects none"])
    return row
