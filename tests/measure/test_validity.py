"""Every outcome of the point-validity classifier, its severity order and its notes."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from duplexbench.measure.validity import (
    COMPARABLE,
    SEVERITY,
    classify,
    comparable,
    validity_column,
)

GOOD = {"status": "ok", "delivered": 5000, "expected": 5000, "lost": 0, "lat_samples": 5000,
        "client_cpu_pct": 40.0, "server_cpu_pct": 50.0, "late": 0, "sent": 500,
        "rate_msgs_s": 100, "duration_s": 5.0}


@pytest.mark.parametrize("changes, expected", [
    ({}, "ok"),
    ({"status": "failed", "delivered": None, "lat_samples": None}, "failed"),
    ({"status": "error"}, "failed"),
    ({"delivered": 0, "lat_samples": 0}, "empty"),
    ({"lat_samples": 0}, "empty"),
    ({"lost": 3}, "lost"),
    ({"client_cpu_pct": 95.0}, "loadgen-saturated"),
    ({"client_cpu_pct": 95.0, "server_cpu_pct": 97.0}, "both-saturated"),
    ({"server_cpu_pct": 96.0}, "server-saturated"),
    ({"late": 4}, "late"),
    ({"lat_samples": 50}, "few-samples"),
])
def test_each_outcome(changes, expected):
    assert classify({**GOOD, **changes}).validity == expected


def test_most_severe_wins_and_the_rest_are_notes():
    judged = classify({**GOOD, "lost": 2, "client_cpu_pct": 99.0, "late": 7, "lat_samples": 40})
    assert judged.validity == "lost"
    assert "loadgen-saturated: load generator 99%" in judged.notes
    assert "late: 7 deliveries" in judged.notes and "few-samples: 40" in judged.notes
    assert SEVERITY.index("lost") < SEVERITY.index("loadgen-saturated")


def test_expected_loss_is_a_note_not_a_verdict():
    judged = classify({**GOOD, "lost": 30}, expect_loss=True)
    assert judged.validity == "ok" and "lost (the scenario expects loss)" in judged.notes


def test_loadgen_share_is_per_core_of_the_generator():
    assert classify({**GOOD, "client_cpu_pct": 150.0, "loadgen_cores": 2}).validity == "ok"
    assert classify({**GOOD, "client_cpu_pct": 190.0, "loadgen_cores": 2}).validity \
        == "loadgen-saturated"


def test_missing_figures_are_not_conditions():
    judged = classify({**GOOD, "late": math.nan, "client_cpu_pct": None, "server_cpu_pct": ""})
    assert judged.validity == "ok" and judged.notes == ""


def test_comparable_set():
    assert COMPARABLE == {"ok", "server-saturated"}
    assert comparable("server-saturated") and not comparable("late")
    assert not comparable("loadgen-saturated") and not comparable(float("nan"))


def test_validity_column_prefers_stored_and_fills_old_runs():
    frame = pd.DataFrame([GOOD, {**GOOD, "lost": 1}])
    assert list(validity_column(frame)) == ["ok", "lost"]
    stored = frame.assign(validity=["server-saturated", "lost"])
    assert list(validity_column(stored)) == ["server-saturated", "lost"]


def test_failed_publishes_are_noted():
    judged = classify({**GOOD, "publish_failed": 12})
    assert judged.validity == "ok" and "12 publishes failed" in judged.notes


def test_a_publisher_behind_its_schedule_is_a_saturated_load_generator():
    judged = classify({**GOOD, "sent": 297, "rate_msgs_s": 4000, "duration_s": 1.0})
    assert judged.validity == "loadgen-saturated"
    assert "sent 297 of 4,000 scheduled" in judged.notes
    # Poisson noise, tiny schedules, failed publishes and a saturated server are not it.
    assert classify({**GOOD, "sent": 470}).validity == "ok"
    assert classify({**GOOD, "sent": 20, "rate_msgs_s": 50, "duration_s": 1.0}).validity == "ok"
    assert classify({**GOOD, "sent": 100, "publish_failed": 400}).validity == "ok"
    assert classify({**GOOD, "sent": 100, "server_cpu_pct": 97}).validity == "server-saturated"


def test_client_errors_of_a_fault_point_are_expected_not_a_failure():
    """A restart or cut makes clients fail on purpose; recovery and loss judge that point."""
    row = {"status": "ok", "errors": 20, "delivered": 1000, "lat_samples": 1000, "lost": 0}
    assert classify(row).validity == "failed"
    judged = classify({**row, "fault": "restart-sigterm"})
    assert judged.validity == "ok" and "20 client errors during the restart-sigterm" in judged.notes
    assert classify({**row, "fault": "cut", "status": "failed"}).validity == "failed"


@pytest.mark.parametrize("changes, note", [
    ({"server_cpu_pct": 85.0}, "near saturation (server at 85 %, > 80 %)"),
    ({"client_cpu_pct": 88.0}, "near saturation (load generator at 88 %, > 80 %)"),
    ({"client_cpu_pct": 170.0, "loadgen_cores": 2}, "near saturation (load generator at 85 %"),
])
def test_near_saturation_is_a_note_with_its_figure(changes, note):
    judged = classify({**GOOD, **changes})
    assert judged.validity == "ok" and note in judged.notes


@pytest.mark.parametrize("server, client", [(80.0, 40.0), (50.0, 79.9), (95.0, 40.0), (50.0, 91.0)])
def test_no_near_saturation_note_at_or_below_80_or_when_saturated(server, client):
    judged = classify({**GOOD, "server_cpu_pct": server, "client_cpu_pct": client})
    assert "near saturation" not in judged.notes


def test_near_saturation_rides_along_with_a_worse_validity():
    judged = classify({**GOOD, "server_cpu_pct": 86.0, "lost": 2})
    assert judged.validity == "lost" and "near saturation (server at 86 %" in judged.notes


def test_a_broker_sharing_the_server_core_counts_toward_its_saturation():
    # Workers behind Redis on one core (duplexbench/broker/extension.py): 70 % + Redis 25 %.
    judged = classify({**GOOD, "server_cpu_pct": 70.0, "server_core_cpu_pct": 95.0})
    assert judged.validity == "server-saturated"
    assert judged.notes.startswith("server core (server + broker) 95% of a core")
    near = classify({**GOOD, "server_cpu_pct": 60.0, "server_core_cpu_pct": 85.0})
    assert near.validity == "ok" and "near saturation (server core (server + broker) at 85 %" in near.notes
    assert classify({**GOOD, "server_core_cpu_pct": math.nan}).validity == "ok"
