"""LoadSpec: defaults, JSON round trip, and errors that name the field."""

from __future__ import annotations

import dataclasses

import pytest

from clients.spec import LoadSpec, SpecError

URL = "http://127.0.0.1:8080"


def test_defaults_and_round_trip():
    spec = LoadSpec(transport="sse", sub_url=URL, clients=3, rate=50.5)
    assert spec.publish_url == URL  # pub_url defaults to sub_url
    again = LoadSpec.from_json(spec.to_json())
    assert again == spec
    assert dataclasses.is_dataclass(spec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.clients = 4  # type: ignore[misc]


def test_from_file(tmp_path):
    path = tmp_path / "SPEC.json"
    path.write_text(LoadSpec(transport="websocket", sub_url=URL).to_json())
    assert LoadSpec.from_file(path).transport == "websocket"
    with pytest.raises(SpecError, match="cannot read"):
        LoadSpec.from_file(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"transport": "smoke"}, "transport: expected one of longpoll, sse, ndjson, websocket"),
        ({"sub_url": "ws://x"}, "sub_url: expected http://HOST:PORT"),
        ({"pub_url": "http://h:1/path"}, "pub_url"),
        ({"pattern": "broadcast"}, "pattern"),
        ({"clients": 0}, "clients: expected an integer >= 1"),
        ({"clients": True}, "clients"),
        ({"rate": -1}, "rate: expected a number >= 0"),
        ({"rate": float("nan")}, "rate"),
        ({"duration_s": 0}, "duration_s: expected a number > 0"),
        ({"payload_bytes": 0}, "payload_bytes"),
        ({"upstream": "udp"}, "upstream"),
        ({"arrival": "bursty"}, "arrival"),
        ({"keepalive": "yes"}, "keepalive"),
        ({"pattern": "chat", "clients": 2, "topics": 3}, "rooms"),
        ({"topic_prefix": "bad prefix"}, "topic_prefix"),
        ({"topic_prefix": "x" * 70}, "topic_prefix"),
    ],
)
def test_validation_names_the_field(changes, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        LoadSpec(**{"transport": "longpoll", "sub_url": URL, **changes})


def test_from_json_errors():
    with pytest.raises(SpecError, match="not JSON"):
        LoadSpec.from_json("{")
    with pytest.raises(SpecError, match="unknown field"):
        LoadSpec.from_json('{"transport": "sse", "sub_url": "%s", "clinets": 3}' % URL)
    with pytest.raises(SpecError, match="missing field"):
        LoadSpec.from_json('{"transport": "sse"}')
