"""The ``http`` dimension of a scenario (docs/http2.md): the sweep, the paths it keeps, and
what is refused up front with the key to change."""

from __future__ import annotations

import pytest

from duplexbench.scenario import ScenarioError, parse_scenario

BASE = {"name": "h2", "clients": 5, "rate": 20, "duration_s": 1}


def test_sweep_keeps_only_paths_that_have_http2():
    s = parse_scenario({**BASE, "transports": ["sse"], "http": ["1.1", "2"],
                        "server": {"stack": ["python", "node"]},
                        "proxy": {"kind": ["none", "nginx"], "buffering": False}})
    got = [(p.stack, p.proxy, p.http) for p in s.points()]
    # aiohttp: HTTP/2 only through nginx; the Node reference: direct, both versions
    assert got == [("python", "none", "1.1"), ("python", "nginx", "1.1"),
                   ("python", "nginx", "2"), ("node", "none", "1.1"), ("node", "none", "2")]
    assert "h2" in s.points()[2].label and "node" in s.points()[3].label
    assert len({p.key for p in s.points()}) == 5
    assert parse_scenario(s.to_dict()) == s


def test_default_keys_stay_as_before():
    point = parse_scenario({**BASE, "transports": ["sse"]}).points()[0]
    assert point.http == "1.1" and point.stack == "python" and len(point.key) == 11


def test_streams_per_connection_only_on_http2_points():
    s = parse_scenario({**BASE, "transports": ["sse"], "http": ["1.1", "2"],
                        "streams_per_connection": 12, "proxy": {"kind": "nginx"}})
    assert [(p.http, p.streams_per_connection) for p in s.points()] == [("1.1", 1), ("2", 12)]


@pytest.mark.parametrize("extra, words", [
    ({"http": "2"}, "aiohttp servers speak HTTP/1.1 only"),
    ({"http": "3"}, "key 'http'"),
    ({"streams_per_connection": 4}, "need HTTP/2"),
    ({"http": "2", "streams_per_connection": 500, "proxy": {"kind": "nginx"}}, "1 to 128"),
    ({"http": "2", "proxy": {"kind": "nginx"}, "longpoll": {"keepalive": [True, False]}},
     "longpoll.keepalive"),
    ({"http": "2", "proxy": {"kind": "nginx"}, "upstream": "transport"}, "key 'upstream'"),
    ({"http": "2", "proxy": {"kind": "nginx"}, "engine": "locust"}, "Locust speaks HTTP/1.1"),
    ({"http": "2", "proxy": {"kind": "nginx"}, "engine": "browser"}, "over TLS"),
    ({"server": {"stack": "node"}, "proxy": {"kind": "nginx"}}, "measured direct"),
    ({"server": {"stack": "deno"}}, "server.stack"),
])
def test_refused_up_front(extra, words):
    with pytest.raises(ScenarioError) as info:
        parse_scenario({**BASE, **extra})
    assert words in str(info.value)


def test_shipped_scenario_loads():
    from duplexbench.scenario import load_scenario

    s = load_scenario("scenarios/http2.toml")
    assert {p.http for p in s.points()} == {"1.1", "2"}
    assert all(p.tls for p in s.points())


def test_command_line_engine_is_checked_too():
    from duplexbench.scenario.http import check_engine

    s = parse_scenario({**BASE, "http": ["1.1", "2"], "proxy": {"kind": "nginx"}})
    check_engine(s, "native")
    with pytest.raises(ScenarioError, match="Locust speaks HTTP/1.1"):
        check_engine(s, "locust")
    with pytest.raises(ScenarioError, match="over TLS"):
        check_engine(s, "browser")
