"""Hand-made summary rows and runs for the claims tests (report/claims*.py).

A module of its own, like _timeouts.py: the claims tests live beside what they check
(tests/netem, tests/compare, tests/report) and all need the same kind of row.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["FakeRun", "summary_row"]

#: A comparable, low-rate, direct point: what every test starts from and changes.
BASE = {"delay_ms": 0, "payload_bytes": 64, "message_bytes": 110, "rate_msgs_s": 5,
        "keepalive": True, "upstream": "post", "status": "ok", "lat_samples": 100,
        "lat_mean_ms": 1.0, "lat_max_ms": 2.0, "overhead_down_per_msg": 3.0,
        "overhead_up_per_msg": 0.0, "http_requests_per_msg": 0.0, "clients": 2,
        "delivered": 2400}


@dataclass
class FakeRun:
    """What claim_rows reads of a run: its summary."""

    summary: pd.DataFrame


def summary_row(transport: str, **values) -> dict:
    """BASE for ``transport`` with ``values`` changed."""
    return {"transport": transport, **BASE, **values}
