"""Recovery, status and the reconnect storm from synthetic deliveries and process samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from duplexbench.faults.analysis import annotate_row, recovery
from duplexbench.measure.series import merge_generations

S = 1_000_000_000


def _samples(rows):
    return pd.DataFrame(rows, columns=["subscriber", "sent_ns", "recv_ns"])


def _deliveries(subscribers, sent_times, delay_ns=1_000_000, skip=()):
    return [(s, t, t + delay_ns) for s in subscribers for t in sent_times if (s, t) not in skip]


def test_recovery_is_the_first_delivery_of_a_message_published_after_the_fault():
    times = [i * S // 10 for i in range(1, 100)]  # 10 msg/s for ~10 s
    fault = 5 * S
    rows = [r for r in _deliveries([0, 1], times) if not (fault <= r[1] < 6 * S)]
    # subscriber 1 comes back late: its first message after the fault arrives 2.5 s after it
    rows = [r for r in rows if not (r[0] == 1 and r[1] >= 6 * S and r[2] < 7.5 * S)]
    rows.append((1, 6 * S, 7.5 * S))
    result = recovery([{"n": 0, "fault_ns": fault, "up_ns": 5.5 * S}], _samples(rows))
    assert result[0]["unrecovered"] == 0 and result[0]["receiving_before"] == 2
    assert math.isclose(result[0]["recovery_s_max"], 2.5)
    assert math.isclose(result[0]["recovery_after_up_s_max"], 2.0)


def test_a_subscriber_that_never_comes_back_is_unrecovered():
    times = [i * S // 10 for i in range(1, 100)]
    rows = [r for r in _deliveries([0, 1, 2], times) if not (r[0] == 2 and r[1] > 5 * S)]
    row = {"status": "error", "lost": 10, "warnings": "LOST 10 of 100 messages"}
    annotate_row(row, kind="restart-sigterm", counters={"publish_failed": 3},
                 driver_summary={"count": 1, "events": [{"n": 0, "fault_ns": 5 * S, "up_ns": 5 * S}]},
                 samples=_samples(rows), load=None)
    assert row["status"] == "unrecovered" and row["unrecovered"] == 1
    assert math.isnan(row["recovery_s_max"])  # no "max" while someone never recovered
    assert row["publish_failed"] == 3 and row["fault"] == "restart-sigterm"
    assert "NOT RECOVERED" in row["warnings"]


def test_status_sigkill_loss_allowed_sigterm_loss_not():
    times = [i * S // 10 for i in range(1, 100)]
    samples = _samples(_deliveries([0], times))
    events = {"count": 1, "events": [{"n": 0, "fault_ns": 5 * S, "up_ns": 5 * S}]}
    kill = {"status": "error", "lost": 4, "warnings": "LOST 4 of 90 messages"}
    annotate_row(kill, kind="restart-sigkill", driver_summary=events, samples=samples,
                 load=None, counters={})
    assert kill["status"] == "ok" and "LOST 4" not in kill["warnings"]
    assert "allowed for this fault" in kill["warnings"] and "; " not in kill["warnings"]
    term = {"status": "error", "lost": 4, "warnings": ""}
    annotate_row(term, kind="restart-sigterm", driver_summary=events, samples=samples,
                 load=None, counters={})
    assert term["status"] == "lost"
    clean = {"status": "error", "lost": 0, "warnings": ""}  # client errors alone: symptoms
    annotate_row(clean, kind="cut", driver_summary=events, samples=samples, load=None, counters={})
    assert clean["status"] == "ok"
    failed = {"status": "error", "lost": 0, "warnings": ""}
    annotate_row(failed, kind="cut", driver_summary={**events, "error": "boom"}, samples=samples,
                 load=None, counters={})
    assert failed["status"] == "error" and "boom" in failed["warnings"]


def _load(process, t, cpu):
    return pd.DataFrame({"process": process, "t_s": t, "cpu_user_s": cpu, "cpu_system_s": 0.0,
                         "rss_mib": 50.0, "open_files": 10, "connections": 5, "phase": "measure"})


def test_generations_merge_into_one_cumulative_series_and_the_storm_peak_is_found():
    t0 = np.arange(0, 5, 0.05)
    t1 = np.arange(5.5, 15, 0.05)
    # old server: 10% of a core; new one: 80% for its first second, then 10%
    cpu1 = np.where(t1 < 6.5, (t1 - 5.5) * 0.8, 0.8 + (t1 - 6.5) * 0.1)
    load = pd.concat([_load("server", t0, t0 * 0.1), _load("server@1", t1, cpu1),
                      _load("loadgen", t0, t0 * 0.2)], ignore_index=True)
    merged = merge_generations(load)
    server = merged[merged["process"] == "server"].sort_values("t_s")
    assert set(merged["process"]) == {"server", "loadgen"}
    assert np.all(np.diff(server["cpu_user_s"].to_numpy()) >= -1e-12)  # never drops
    row = {"status": "ok", "lost": 0, "warnings": ""}
    # measurement starts at sampler time 0 = monotonic 100 s; the server was back at 5.5 s
    annotate_row(row, kind="restart-sigterm", counters={}, load=merged,
                 driver_summary={"count": 1, "measure_ns": 100 * S,
                                 "events": [{"n": 0, "fault_ns": 105 * S, "up_ns": 105.5 * S}]},
                 samples=_samples([]))
    assert 70 <= row["server_cpu_peak_pct"] <= 90
