"""The [faults] table: parsed into the scenario, swept like clients, bad input named."""

from __future__ import annotations

import pytest

from duplexbench.faults import FAULT_KINDS, FaultOptions, loss_allowed
from duplexbench.scenario import ScenarioError, load_scenario, parse_scenario


def _scenario(duration_s=10.0, **faults):
    return parse_scenario({"name": "f", "transports": ["sse"], "clients": 5,
                           "duration_s": duration_s, "faults": faults})


def test_shipped_faults_scenario_sweeps_every_kind_on_every_transport():
    scenario = load_scenario("scenarios/faults.toml")
    points = scenario.points()
    # kill-worker needs workers behind a broker: scenarios/scaleout-faults.toml has it.
    assert {(p.transport, p.fault) for p in points} == {
        (t, k) for t in ("longpoll", "sse", "ndjson", "websocket") for k in FAULT_KINDS
        if k != "kill-worker"}
    workers = load_scenario("scenarios/scaleout-faults.toml").points()
    assert {(p.transport, p.fault, p.workers, p.broker) for p in workers} == {
        (t, "kill-worker", 2, "redis") for t in ("longpoll", "sse", "ndjson", "websocket")}
    assert "fault=cut" in points[2].label
    assert parse_scenario(scenario.to_dict(), path=scenario.path) == scenario  # round trip


def test_defaults_and_times():
    options = _scenario(kind="cut", at_s=2.0, count=3, every_s=2.5, duration_s=14.0).faults
    assert options == FaultOptions(kind=("cut",), at_s=2.0, count=3, every_s=2.5, down_s=0.5,
                                   reconnect_min_s=0.1, reconnect_max_s=5.0)
    assert options.times() == [2.0, 4.5, 7.0]
    assert options.spec_fields() == {"reconnect_min_s": 0.1, "reconnect_max_s": 5.0}


def test_the_window_after_the_last_fault_covers_the_longest_back_off():
    with pytest.raises(ScenarioError, match=r"duration_s >= 9\.5"):
        _scenario(at_s=3.0, duration_s=9.0)
    assert _scenario(at_s=3.0, reconnect_max_s=2.0, duration_s=7.0).faults.reconnect_max_s == 2.0


def test_no_table_no_fault():
    scenario = parse_scenario({"name": "f", "transports": ["sse"]})
    assert scenario.faults is None
    assert all(p.fault == "" for p in scenario.points())
    assert "fault" not in scenario.points()[0].label


@pytest.mark.parametrize("table, words", [
    ({"kind": "reboot"}, "faults.kind"),
    ({"kind": []}, "faults.kind"),
    ({"kind": ["cut", "cut"]}, "faults.kind"),
    ({"at_s": -1}, "faults.at_s"),
    ({"at_s": True}, "faults.at_s"),
    ({"count": 0}, "faults.count"),
    ({"down_s": "1"}, "faults.down_s"),
    ({"at_s": 9.5}, "longest back-off"),
    ({"reconnect_min_s": 0}, "faults.reconnect_min_s"),
    ({"reconnect_min_s": 2.0, "reconnect_max_s": 1.0}, "faults.reconnect_max_s"),
    ({"count": 2, "every_s": 1.0}, "faults.every_s"),
    ({"kinds": "cut"}, "unknown key 'faults.kinds'"),
])
def test_bad_tables_are_named(table, words):
    with pytest.raises(ScenarioError, match=words.replace(".", r"\.")):
        _scenario(**table)


def test_not_a_table():
    with pytest.raises(ScenarioError, match="expected a table"):
        parse_scenario({"name": "f", "faults": 3})


def test_duration_override_is_checked_against_the_faults():
    scenario = load_scenario("scenarios/faults.toml")
    with pytest.raises(ScenarioError, match="faults.at_s"):
        scenario.with_overrides(duration_s=2.0)


def test_only_sigkill_may_lose():
    assert loss_allowed("restart-sigkill")
    assert not loss_allowed("restart-sigterm") and not loss_allowed("cut")
