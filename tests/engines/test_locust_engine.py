"""Locust as a load generator: master + 2 local workers per transport, native files out.

Why: the Locust engine must be a drop-in for ``clients.loadgen`` (same events,
same counters.json / samples.parquet, a summary row in the standard schema), and
it must deliver every message with no failure on every transport. Each run is a
few seconds against a real server on 127.0.0.1.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from duplexbench.runner.generator import make_spec
from duplexbench.measure.metrics import summarize_point
from duplexbench.measure.results import SUMMARY_COLUMNS
from duplexbench.scenario import parse_scenario

#: Slow CI stretches every timeout (tests/conftest.py uses the same variable).
TIMEOUT_SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


TRANSPORTS = ["longpoll", "sse", "ndjson", "websocket"]
SAMPLE_COLUMNS = ["subscriber", "seq", "index", "intended_ns", "sent_ns", "recv_ns"]


def _scenario(transport: str, **extra):
    return parse_scenario({
        "name": "locust-test", "transports": [transport], "pattern": "fanout",
        "clients": [4], "rate": [40], "payload_bytes": [64], "topics": 2,
        "warmup_s": 0.5, "duration_s": 2.0, "drain_s": 1.0, **extra,
    })


def _run_engine(spec, tmp_path: Path, workers: int = 2) -> list[dict]:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec.to_json())
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "duplexbench.engines.locust", str(spec_path), str(out),
         "--workers", str(workers)],
        capture_output=True, text=True, timeout=scaled(60),
    )
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(out.glob("locust-*.log")))
    assert proc.returncode == 0, proc.stderr + logs
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_master_and_two_workers_deliver_everything(server, tmp_path, transport):
    scenario = _scenario(transport)
    point = scenario.points()[0]
    spec = make_spec(scenario, point, sub_url=server.url, pub_url=server.url,
                     topic_prefix=f"lk-{transport}")
    events = _run_engine(spec, tmp_path)

    names = [e["event"] for e in events]
    assert names[0] == "ready" and names[-1] == "done"
    assert [e["phase"] for e in events if e["event"] == "phase"] == ["warmup", "measure", "drain"]

    out = tmp_path / "out"
    counters = json.loads((out / "counters.json").read_text())
    assert counters["engine"] == "locust" and counters["clock"] == "CLOCK_REALTIME"
    # 40 msgs/s for 2 s over 2 topics with 2 subscribers each: 80 published, 160 expected.
    assert 70 <= counters["published"] <= 90
    assert counters["expected"] == 2 * counters["published"]
    assert counters["delivered"] > 0
    assert counters["delivered"] == counters["expected"]
    assert counters["lost"] == 0 and counters["errors"] == 0 and counters["duplicated"] == 0
    assert counters["subscribers"] == 4
    # The engine core's figures, as the native engine reports them.
    assert counters["reordered"] == 0 and counters["negative_latencies"] == 0
    assert counters["late"] == 0 and counters["drain_bound_s"] >= 1.0
    assert counters["message_bytes_min"] <= counters["message_bytes"] <= counters["message_bytes_max"]
    # The byte window opens once every process holds the warm-up (the measured schedule
    # starts after that pause): it carries the measured messages only, so a WebSocket
    # delivery costs its envelope plus the server frame header (RFC 6455: 2 bytes below
    # 126 bytes of payload, 4 from 126), plus amortised pings, nothing more.
    assert counters["warmup_pause_ms"] is not None and counters["warmup_pause_ms"] >= 0
    if transport == "websocket":
        header = 2 if counters["message_bytes_max"] < 126 else 4
        overhead = counters["wire"]["sub"]["bytes_down"] / counters["delivered"] - counters["message_bytes"]
        assert header - 1e-3 <= overhead <= header + 0.5, overhead
    assert counters["wire"]["sub"]["bytes_down"] >= counters["delivered"] * counters["message_bytes"]
    assert counters["wire"]["pub"]["http_requests"] >= counters["published"] - 1

    samples = pd.read_parquet(out / "samples.parquet")
    assert list(samples.columns) == SAMPLE_COLUMNS
    assert len(samples) == counters["delivered"]
    assert (samples["recv_ns"] >= samples["sent_ns"]).all()
    assert (samples["sent_ns"] >= samples["intended_ns"]).all()
    assert samples["subscriber"].nunique() == 4

    # Locust's own statistics saw the same deliveries, per transport, with no failure.
    with open(out / "locust" / "stats_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    label = {"longpoll": "LONGPOLL", "sse": "SSE", "ndjson": "NDJSON", "websocket": "WS"}[transport]
    delivered_rows = [r for n, r in rows.items() if n.startswith("deliver ") and r["Type"] == label]
    assert sum(int(r["Request Count"]) for r in delivered_rows) >= counters["delivered"]
    assert all(int(r["Failure Count"]) == 0 for r in rows.values())

    row, tidy = summarize_point(run_id="locust-test", scenario=scenario, point=point,
                                engine="locust", counters=counters, samples=samples,
                                load=pd.DataFrame())
    assert list(row) == list(SUMMARY_COLUMNS)
    assert row["engine"] == "locust" and row["transport"] == transport
    assert row["delivered"] == counters["delivered"] and row["lost"] == 0
    assert row["lat_samples"] == len(samples) and row["lat_p50_ms"] >= 0
    assert len(tidy) == len(samples)


def test_unreachable_subscribers_fail_fast(server, tmp_path):
    """Able to fail: subscribers that cannot connect end the run with an error (after
    the connect timeout), not with an empty success or a wait for --run-time."""
    scenario = _scenario("websocket", clients=[2], topics=1)
    point = scenario.points()[0]
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    spec = make_spec(scenario, point, sub_url=dead, pub_url=server.url, topic_prefix="lk-dead")
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec.to_json())
    proc = subprocess.run(
        [sys.executable, "-m", "duplexbench.engines.locust", str(spec_path), str(tmp_path / "out"),
         "--workers", "1"],
        capture_output=True, text=True, timeout=scaled(60),
        env={**os.environ, "DUPLEXBENCH_CONNECT_TIMEOUT_S": "3"},
    )
    assert proc.returncode == 1, proc.stderr
    assert "0 of 2 subscribers connected within 3 s" in proc.stderr
    assert not (tmp_path / "out" / "counters.json").exists()


def test_merge_counts_missing_deliveries_as_lost(tmp_path):
    """The merge step: expected comes from publishes x subscribers per topic, so a
    delivery that never arrived is lost; warm-up messages and repeats do not count."""
    from clients.spec import LoadSpec
    from duplexbench.engines.locust import merge_records

    spec = LoadSpec(transport="sse", sub_url="http://127.0.0.1:1", clients=2, topics=1,
                    topic_prefix="m", warmup_s=1.0, duration_s=1.0)
    (tmp_path / "subscribers-a.csv").write_text("0,m-0\n1,m-0\n")
    # index 0 is warm-up (intended before the window); 1 and 2 are measured.
    (tmp_path / "publishes-a.csv").write_text("0,m-0,1,50,51\n1,m-0,2,100,101\n2,m-0,3,150,151\n")
    (tmp_path / "deliveries-a.csv").write_text(
        "0,1,m-0,0,51,60\n0,2,m-0,1,101,110\n0,3,m-0,2,151,160\n"
        "1,2,m-0,1,101,111\n1,2,m-0,1,101,112\n"  # subscriber 1: index 2 missing, 1 twice
    )
    (tmp_path / "wire-a.json").write_text(json.dumps({
        "final": {"sub": {"bytes_down": 500, "errors": 1}, "pub": {"http_requests": 3}},
        "at_measure_start": {"sub": {"bytes_down": 100}, "pub": {"http_requests": 1}},
        "duplicated": 0,
    }))
    counters, samples = merge_records(spec, tmp_path, {"measure_start_ns": 100, "measure_end_ns": 200})
    assert counters["published"] == 2 and counters["expected"] == 4
    assert counters["delivered"] == 3 and counters["lost"] == 1
    assert counters["duplicated"] == 1 and counters["errors"] == 1
    assert counters["wire"]["sub"]["bytes_down"] == 400 and counters["wire"]["pub"]["http_requests"] == 2
    assert sorted(samples["index"]) == [1, 1, 2]
    assert list(samples.columns) == SAMPLE_COLUMNS
