"""Claims use only points whose validity is comparable, and say which they left out."""

from __future__ import annotations

import pandas as pd

from duplexbench.report.claims import claim_rows
from tests._claim_rows import FakeRun, summary_row


def _row(transport, **values):
    return summary_row(transport, **{"delay_ms": 25, "lat_samples": 400, "lat_mean_ms": 26.0,
                                     "lat_max_ms": 27.5, "clients": 4, "delivered": 400,
                                     "client_cpu_pct": 20.0, "server_cpu_pct": 10.0, **values})


def test_saturated_points_make_no_claim_and_are_named():
    ok = claim_rows([FakeRun(pd.DataFrame([_row("sse")]))])
    assert any("SSE" in r["claim"] and r["verdict"] == "confirmed" for r in ok), ok
    # The same point, but its load generator was at 97 % of a core: no verdict from it.
    hot = claim_rows([FakeRun(pd.DataFrame([_row("sse", client_cpu_pct=97.0)]))])
    assert [r["verdict"] for r in hot] == ["not judged"], hot
    assert "sse" in hot[0]["claim"] and "loadgen-saturated" in hot[0]["measurement"]
