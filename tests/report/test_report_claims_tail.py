"""Claims rest on a high percentile of the deliveries (with n and its noise), and on IP bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from duplexbench.report.claims import claim_rows


@dataclass
class SampledRun:
    summary: pd.DataFrame
    frame: pd.DataFrame

    def samples(self) -> pd.DataFrame:
        return self.frame


def _summary(transport, **values):
    row = {"transport": transport, "point": 0, "repeat": 0, "delay_ms": 25, "payload_bytes": 64,
           "message_bytes": 110, "rate_msgs_s": 2, "keepalive": True, "upstream": "post",
           "status": "ok", "lat_samples": 5000, "lat_mean_ms": 30.0, "lat_max_ms": 400.0,
           "overhead_down_per_msg": 180.0, "overhead_up_per_msg": 120.0,
           "http_requests_per_msg": 1.0, "clients": 10, "delivered": 5000,
           "ip_bytes_down_per_msg": 400.0, "ip_bytes_up_per_msg": 250.0}
    row.update(values)
    return row


def test_one_outlier_does_not_decide_the_worst_case_claim():
    rng = np.random.default_rng(1)
    # 80% of deliveries take one transit, 20% land in the re-poll gap (1-3 transits),
    # and one delivery stalls for 400 ms (a GC pause): the maximum alone would say 5.3 transits.
    latency = np.concatenate([25 + rng.uniform(0, 1, 4000), rng.uniform(25, 75, 999), [400.0]])
    samples = pd.DataFrame({"point": 0, "repeat": 0, "transport": "longpoll",
                            "latency_ms": latency})
    run = SampledRun(pd.DataFrame([_summary("longpoll")]), samples)
    row = next(r for r in claim_rows([run]) if "3 transits" in r["claim"])
    assert row["measurement"].startswith("p99.9 ") and "over 5000 deliveries" in row["measurement"]
    assert "±" in row["measurement"]  # the percentile's measured noise
    assert row["verdict"] == "confirmed", row
    header = next(r for r in claim_rows([run]) if "full HTTP request" in r["claim"])
    assert "540 B at the IP level" in header["measurement"]  # 400 + 250 - 110
    assert header["ratio"] == 1.0  # 1 HTTP request per delivered message, the one figure


def test_too_few_deliveries_are_not_judged():
    """Under 100 deliveries a point is few-samples (validity): left out of every claim, said so."""
    samples = pd.DataFrame({"point": 0, "repeat": 0, "transport": "sse",
                            "latency_ms": np.full(50, 26.0)})
    run = SampledRun(pd.DataFrame([_summary("sse", lat_samples=50, delivered=50)]), samples)
    rows = claim_rows([run])
    assert not [r for r in rows if r["claim"].startswith("SSE")]
    assert [r["verdict"] for r in rows] == ["not judged"] and "few-samples" in rows[0]["measurement"]
