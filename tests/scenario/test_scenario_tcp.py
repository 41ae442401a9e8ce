"""Plain TCP (``tcp``) in scenarios: selectable after websocket, swept with patterns, and
refused up front where it cannot run as asked (Locust, a browser, nginx in front)."""

from __future__ import annotations

from pathlib import Path

import pytest

from duplexbench.scenario import TRANSPORTS, WEB_TRANSPORTS, ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _scenario(**keys):
    return parse_scenario({"name": "t", "transports": ["websocket", "tcp"], "clients": [2],
                           "rate": [10], "duration_s": 2.0, **keys})


def test_tcp_comes_after_websocket_and_is_asked_for_by_name():
    assert TRANSPORTS == (*WEB_TRANSPORTS, "tcp") and WEB_TRANSPORTS[-1] == "websocket"
    assert parse_scenario({"name": "d"}).transports == WEB_TRANSPORTS


def test_floor_sweeps_five_transports_two_patterns_and_fits_a_few_minutes():
    floor = load_scenario(SCENARIOS / "floor.toml")
    assert floor.transports == TRANSPORTS and floor.sweep_patterns() == ("fanout", "echo")
    assert floor.pattern == "fanout" and floor.upstream == "transport" and not floor.expect_loss
    points = floor.points()
    assert {(p.transport, p.pattern) for p in points} == {
        (t, pat) for t in TRANSPORTS for pat in ("fanout", "echo")}
    assert len({p.key for p in points}) == len(points)  # fan-out and echo never share a key
    per_point = floor.warmup_s + floor.duration_s + floor.drain_s
    assert len(points) * (per_point + 2) < 6 * 60
    assert parse_scenario(floor.to_dict()).patterns == ("fanout", "echo")


@pytest.mark.parametrize("engine", ["locust", "browser"])
def test_engines_without_a_plain_tcp_client_refuse_it(engine):
    with pytest.raises(ScenarioError, match=f"engine '{engine}' cannot run transport 'tcp'"):
        _scenario(engine=[engine])
    scenario = _scenario()
    with pytest.raises(ScenarioError, match="use the native engine"):
        scenario.check_engine(engine)
    scenario.check_engine("native")


def test_nginx_in_front_of_tcp_is_refused_with_the_reason():
    with pytest.raises(ScenarioError, match="nginx proxies HTTP and WebSocket"):
        _scenario(proxy={"kind": ["nginx"]})


def test_network_and_faults_take_tcp():
    scenario = _scenario(network={"delay_ms": [5]},
                         faults={"kind": ["restart-sigterm", "cut"], "at_s": 0.5, "down_s": 0.2,
                                 "reconnect_max_s": 0.2})
    assert {(p.transport, p.fault) for p in scenario.points()} >= {("tcp", "cut"),
                                                                  ("tcp", "restart-sigterm")}
