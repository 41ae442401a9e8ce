"""``[server] workers`` and ``broker``: sweeps, the refused combinations, kill-worker's needs."""

from __future__ import annotations

import pytest

from duplexbench.scenario import ScenarioError, parse_scenario


def _scenario(server=None, **keys):
    data = {"name": "w", "transports": ["sse"], "clients": [5], **keys}
    if server is not None:
        data["server"] = server
    return parse_scenario(data)


def test_defaults_leave_points_as_today():
    scenario = _scenario()
    assert scenario.server.workers == (1,) and scenario.server.broker == ("none",)
    point, = scenario.points()
    assert (point.workers, point.broker, point.brokered) == (1, "none", False)
    assert point.label == "sse c=5 r=200/s p=64B"
    assert point.key == ("sse", 5, 200.0, 64, 0.0, True, "none", None, True, False, "")
    # The server's flags of a one-process point are today's: nothing about workers.
    assert "--workers" not in scenario.server.to_args()


def test_both_ways_one_worker_and_more_only_with_redis():
    scenario = _scenario({"workers": [1, 2], "broker": ["none", "redis"]})
    shapes = [(p.workers, p.broker) for p in scenario.points()]
    assert shapes == [(1, "none"), (1, "redis"), (2, "redis")]
    labels = [p.label for p in scenario.points()]
    assert labels[2] == "sse c=5 r=200/s p=64B workers=2+redis"
    assert len({p.key for p in scenario.points()}) == 3  # shapes are told apart across runs
    assert _scenario({"workers": 2, "broker": "redis"}).points()[0].brokered
    # Round trip (meta.json keeps the parsed scenario; overrides re-validate it).
    again = parse_scenario(scenario.to_dict())
    assert again.server.workers == (1, 2) and again.server.broker == ("none", "redis")


@pytest.mark.parametrize("server, expected", [
    ({"workers": 2}, 'workers = 2 needs broker = "redis"'),
    ({"workers": 0}, "key 'server.workers': expected a number of server processes from 1 to 256"),
    ({"workers": 300, "broker": "redis"}, "from 1 to 256"),
    ({"workers": [2, 2], "broker": "redis"}, "expected each value once"),
    ({"broker": "kafka"}, "key 'server.broker': expected one of 'none', 'redis'"),
    ({"workrs": 2}, "did you mean 'workers'"),
])
def test_bad_values_name_the_key(server, expected):
    with pytest.raises(ScenarioError, match="w: ") as error:
        _scenario(server)
    assert expected in str(error.value)


def test_kill_worker_needs_a_broker_on_every_point():
    faults = {"kind": "kill-worker", "at_s": 1.0, "reconnect_max_s": 1.0}
    ok = _scenario({"workers": 2, "broker": "redis"}, duration_s=4.0, faults=faults)
    assert [p.fault for p in ok.points()] == ["kill-worker"]
    with pytest.raises(ScenarioError, match="kill-worker kills one worker process"):
        _scenario({"workers": [1, 2], "broker": ["none", "redis"]}, duration_s=4.0, faults=faults)
    with pytest.raises(ScenarioError, match="kill-worker"):
        _scenario(None, duration_s=4.0, faults=faults)


def test_shipped_scaleout_sets_every_transport_beside_one_process():
    from duplexbench.scenario import TRANSPORTS, load_scenario

    scenario = load_scenario("scenarios/scaleout.toml")
    assert scenario.transports == TRANSPORTS and not scenario.expect_loss
    shapes = {(p.transport, p.workers, p.broker) for p in scenario.points()}
    for transport in TRANSPORTS:
        assert {(transport, 1, "none"), (transport, 2, "redis")} <= shapes
