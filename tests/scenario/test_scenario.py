"""Scenario files: every shipped one loads; bad ones say file, key and expectation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from duplexbench.scenario import (
    TRANSPORTS,
    WEB_TRANSPORTS,
    LoadPoint,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SHIPPED = ("quick", "fanout", "echo", "chat", "payload", "connections")


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message  # always names the file
    return message


# ---------------------------------------------------------------------------
# Shipped scenarios


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_loads(name):
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    assert scenario.name == name
    assert scenario.description, "every shipped scenario says what it measures"
    assert scenario.points()


def test_every_toml_in_scenarios_loads():
    # Scenarios owned by other parts (ci, rfc6202, overhead) must parse too.
    for path in sorted(SCENARIOS.glob("*.toml")):
        load_scenario(path)


def test_quick_covers_every_transport_and_fits_the_time_budget():
    quick = load_scenario(SCENARIOS / "quick.toml")
    assert quick.transports == WEB_TRANSPORTS
    assert not quick.expect_loss
    points = quick.points()
    per_point = quick.warmup_s + quick.duration_s + quick.drain_s
    # 3 minutes on 2 cores, leaving ~5 s per point for server start and connecting.
    assert len(points) * (per_point + 5) < 180


def test_connections_holds_idle_connections_with_short_heartbeats():
    scenario = load_scenario(SCENARIOS / "connections.toml")
    assert max(scenario.clients) >= 1000
    assert max(scenario.rate) <= 5
    assert scenario.server.heartbeat_s <= 5 and scenario.server.ping_interval_s <= 10


def test_echo_and_chat_publish_over_the_transport():
    echo = load_scenario(SCENARIOS / "echo.toml")
    chat = load_scenario(SCENARIOS / "chat.toml")
    assert (echo.pattern, echo.upstream) == ("echo", "transport")
    assert (chat.pattern, chat.upstream) == ("chat", "transport")
    assert chat.topics > 1


def test_payload_sweeps_16_bytes_to_64_kib():
    assert load_scenario(SCENARIOS / "payload.toml").payload_bytes == (16, 256, 4096, 65536)


# ---------------------------------------------------------------------------
# Defaults and parsing


def test_defaults_follow_the_design(tmp_path):
    scenario = load_scenario(write(tmp_path, "", "minimal.toml"))
    assert scenario.name == "minimal"  # the file stem
    assert scenario.transports == ("longpoll", "sse", "ndjson", "websocket")
    assert (scenario.pattern, scenario.upstream, scenario.arrival) == ("fanout", "post", "uniform")
    assert scenario.clients == (20, 100) and scenario.rate == (200.0,)
    assert scenario.payload_bytes == (64,) and scenario.topics == 1
    assert (scenario.warmup_s, scenario.duration_s, scenario.drain_s) == (2.0, 8.0, 3.0)
    assert scenario.repeats == 1 and scenario.expect_loss is False and scenario.seed == 1
    assert scenario.network is None and scenario.engine_options == {}
    assert scenario.longpoll.keepalive == (True,) and scenario.longpoll.max_batch == 1000


def test_scalars_become_one_point_sweeps(tmp_path):
    scenario = load_scenario(write(tmp_path, 'clients = 5\nrate = 10\ntransports = "sse"\n'))
    assert scenario.clients == (5,)
    assert scenario.rate == (10.0,) and isinstance(scenario.rate[0], float)
    assert scenario.transports == ("sse",)


def test_tables(tmp_path):
    scenario = load_scenario(write(tmp_path, """
[server]
queue_limit = 50
heartbeat_s = 2
ping_interval_s = 5.5
retention = 100
uvloop = false
[longpoll]
keepalive = [true, false]
max_batch = 10
[network]
delay_ms = [0, 25]
jitter_ms = 1
mode = "netem"
[engine]
workers = 2
"""))
    assert scenario.server.to_args() == [
        "--queue-limit", "50", "--heartbeat", "2", "--ping-interval", "5.5",
        "--retention", "100",
    ]
    assert "--uvloop" in dataclasses.replace(scenario.server, uvloop=True).to_args()
    assert scenario.longpoll.keepalive == (True, False)
    assert scenario.network.delay_ms == (0.0, 25.0) and scenario.network.mode == "netem"
    assert scenario.engine_options == {"workers": 2}


def test_to_dict_round_trips(tmp_path):
    scenario = load_scenario(SCENARIOS / "connections.toml")
    assert parse_scenario(scenario.to_dict(), path=scenario.path) == scenario


# ---------------------------------------------------------------------------
# Malformed files


def test_wrong_type(tmp_path):
    message = error_for(tmp_path, 'rate = "fast"\n')
    assert "key 'rate': expected a positive number or a list of them, got 'fast'" in message


def test_negative_rate(tmp_path):
    assert "key 'rate'" in (message := error_for(tmp_path, "rate = [200, -1]\n"))
    assert "positive number" in message and "-1" in message


def test_empty_list(tmp_path):
    message = error_for(tmp_path, "clients = []\n")
    assert "key 'clients'" in message and "got []" in message and "sweeps nothing" in message


def test_unknown_key_suggests_the_right_one(tmp_path):
    message = error_for(tmp_path, "duraton_s = 3\n")
    assert "unknown key 'duraton_s'" in message and "did you mean 'duration_s'" in message


def test_unknown_key_in_a_table(tmp_path):
    message = error_for(tmp_path, "[server]\nheartbeat = 2\n")
    assert "unknown key 'server.heartbeat'" in message and "'heartbeat_s'" in message


def test_bad_transport(tmp_path):
    message = error_for(tmp_path, 'transports = ["websocket", "ws"]\n')
    assert "key 'transports'" in message and "'longpoll'" in message and "'ws'" in message


def test_duplicate_transport(tmp_path):
    assert "each once" in error_for(tmp_path, 'transports = ["sse", "sse"]\n')


def test_bool_is_not_a_number_and_number_not_a_bool(tmp_path):
    assert "key 'topics'" in error_for(tmp_path, "topics = true\n")
    assert "key 'expect_loss': expected true or false, got 1" in error_for(
        tmp_path, "expect_loss = 1\n")


@pytest.mark.parametrize("text, key", [
    ('pattern = "broadcast"\n', "pattern"),
    ('upstream = "ws"\n', "upstream"),
    ('arrival = "burst"\n', "arrival"),
    ("duration_s = 0\n", "duration_s"),
    ("warmup_s = -1\n", "warmup_s"),
    ("payload_bytes = 1.5\n", "payload_bytes"),
    ("repeats = 0\n", "repeats"),
    ('name = "a b"\n', "name"),
    ("server = 3\n", "server"),
    ("[network]\nloss_pct = 101\n", "network.loss_pct"),
    ('[network]\nmode = "tc"\n', "network.mode"),
    ("[longpoll]\nkeepalive = [true, true]\n", "longpoll.keepalive"),
    ("[longpoll]\nkeepalive = \"yes\"\n", "longpoll.keepalive"),
])
def test_bad_values_name_the_key(tmp_path, text, key):
    assert f"key '{key}': expected" in error_for(tmp_path, text)


def test_chat_needs_a_client_per_room(tmp_path):
    message = error_for(tmp_path, 'pattern = "chat"\ntopics = 10\nclients = [5]\n')
    assert "key 'clients'" in message and "room" in message


def test_invalid_toml_and_missing_file(tmp_path):
    assert "not valid TOML" in error_for(tmp_path, "rate = [\n")
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")


def test_scenario_error_is_a_value_error():
    assert issubclass(ScenarioError, ValueError)


# ---------------------------------------------------------------------------
# Load points


def test_points_order_repeat_then_transport_then_sweep():
    scenario = parse_scenario({
        "name": "s", "transports": ["longpoll", "websocket"], "clients": [1, 2],
        "rate": [10, 20], "repeats": 2, "longpoll": {"keepalive": [True, False]},
        "network": {"delay_ms": [0, 5]},
    })
    points = scenario.points()
    # longpoll: 2 clients x 2 rates x 2 delays x 2 keepalive; websocket: keepalive once.
    assert len(points) == 2 * (16 + 8)
    assert [p.index for p in points] == list(range(len(points)))
    assert [p.repeat for p in points] == [0] * 24 + [1] * 24
    assert [p.transport for p in points[:24]] == ["longpoll"] * 16 + ["websocket"] * 8
    assert points[0] == LoadPoint(0, 0, "longpoll", 1, 10.0, 64, 0.0, True)
    assert points[1] == LoadPoint(1, 0, "longpoll", 1, 10.0, 64, 0.0, False)
    assert points[2].delay_ms == 5.0
    assert points[4].rate == 20.0 and points[8].clients == 2
    assert all(p.keepalive for p in points if p.transport == "websocket")
    # Every load point appears once per repeat.
    keys = [p.key for p in points]
    assert len(set(keys)) == 24 and keys[:24] == keys[24:]


def test_label():
    assert LoadPoint(0, 0, "websocket", 100, 200.0, 64).label == "websocket c=100 r=200/s p=64B"
    label = LoadPoint(3, 1, "longpoll", 10, 0.5, 16, 25.0, False).label
    assert label == "longpoll c=10 r=0.5/s p=16B d=25ms keepalive=off #2"


def test_with_overrides_validates():
    scenario = load_scenario(SCENARIOS / "quick.toml")
    changed = scenario.with_overrides(transports=["websocket"], duration_s=1)
    assert changed.transports == ("websocket",) and changed.duration_s == 1.0
    assert changed.path == scenario.path and scenario.transports == WEB_TRANSPORTS
    assert {p.transport for p in changed.points()} == {"websocket"}
    with pytest.raises(ScenarioError, match="key 'transports'"):
        scenario.with_overrides(transports=["carrier-pigeon"])
    with pytest.raises(ScenarioError, match="did you mean 'duration_s'"):
        scenario.with_overrides(duration=3)
    server = dataclasses.replace(scenario.server, heartbeat_s=1.0)
    assert scenario.with_overrides(server=server).server.heartbeat_s == 1.0


def test_dataclasses_are_frozen():
    scenario = Scenario(name="x", path="")
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.rate = (1.0,)


# ---------------------------------------------------------------------------
# Refused before the run starts


def test_engine_table_is_validated(tmp_path):
    assert "unknown key 'engine.worker'" in error_for(tmp_path, "[engine]\nworker = 2\n")
    assert "key 'engine.workers': expected a positive integer" in error_for(
        tmp_path, "[engine]\nworkers = 0\n")
    ok = load_scenario(write(tmp_path, "[engine]\nloadgen_procs = 2\n", "ok.toml"))
    assert ok.engine_options == {"loadgen_procs": 2}


def test_payload_above_the_servers_maximum(tmp_path):
    message = error_for(tmp_path, "payload_bytes = [64, 2000]\n[server]\nmax_payload = 1000\n")
    assert "key 'payload_bytes': 2000" in message and "server.max_payload" in message
    assert "1048576" in error_for(tmp_path, "payload_bytes = 2000000\n")
    fits = load_scenario(write(tmp_path, "payload_bytes = 2000\n[server]\nmax_payload = 4096\n",
                               "ok.toml"))
    args = fits.server.to_args()
    assert args[args.index("--max-payload") + 1] == "4096"


def test_empty_measurement_window(tmp_path):
    message = error_for(tmp_path, "rate = 2\nduration_s = 0.4\n")
    assert "key 'duration_s' (--duration)" in message and "0.80 messages" in message
    scenario = load_scenario(write(tmp_path, "rate = 2\nduration_s = 1\n", "ok.toml"))
    with pytest.raises(ScenarioError, match="--duration"):
        scenario.with_overrides(duration_s=0.1)


def test_c10k_holds_ten_thousand_per_transport_and_fits_this_machine():
    from duplexbench.machine.limits import check_point, loadgen_layout

    scenario = load_scenario(SCENARIOS / "c10k.toml")
    assert scenario.transports == WEB_TRANSPORTS and max(scenario.clients) == 10_000
    assert scenario.rate == (2.0,) and scenario.payload_bytes == (64,)
    assert len(set(scenario.clients)) >= 2  # memory per connection needs a sweep
    layout = loadgen_layout(0, allowed=[0, 1])
    assert check_point(10_000, transport="longpoll", layout=layout, nofile=(20_000, 20_000),
                       ports=28_232) == {}
