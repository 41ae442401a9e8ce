"""The envelope: exact bytes, key order, round trips and the errors a client sees."""

import json

import pytest

from duplexbench.contract import (
    ContractError,
    Cursor,
    Envelope,
    decode_envelope,
    encode_envelope,
    make_payload,
    parse_cursor,
    payload_index,
    validate_topic,
)


def test_encode_is_compact_with_keys_in_order():
    assert encode_envelope(1, "t", 5, "hi") == b'{"seq":1,"topic":"t","ts":5,"data":"hi"}'


def test_encode_escapes_json_and_keeps_utf8():
    raw = encode_envelope(2, "t", 0, 'a"b\\c\n\u00e9\u2603')
    assert json.loads(raw)["data"] == 'a"b\\c\n\u00e9\u2603'
    assert "\u2603".encode() in raw  # not \\u escaped: same bytes as the payload


def test_round_trip():
    env = Envelope(7, "room.1", 1_700_000_000_000_000_000, "x" * 100)
    assert decode_envelope(encode_envelope(env.seq, env.topic, env.ts, env.data)) == env


def test_decode_ignores_unknown_keys_such_as_pad():
    raw = b'{"seq":1,"topic":"t","ts":5,"data":"hi","pad":"xxxx"}'
    assert decode_envelope(raw) == Envelope(1, "t", 5, "hi")


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1]", b'{"seq":1,"topic":"t","ts":5}', b'{"seq":"1","topic":"t","ts":5,"data":""}',
     b'{"seq":1,"topic":2,"ts":5,"data":""}', b"\xff\xfe"],
)
def test_decode_rejects(raw):
    with pytest.raises(ContractError):
        decode_envelope(raw)


@pytest.mark.parametrize("topic", ["a", "A-z_0.9", "x" * 64])
def test_good_topics(topic):
    assert validate_topic(topic) == topic


@pytest.mark.parametrize("topic", [None, "", "x" * 65, "a b", "a/b", "\u00e9", "a?b"])
def test_bad_topics(topic):
    with pytest.raises(ContractError, match="topic"):
        validate_topic(topic)


def test_cursor():
    assert parse_cursor(None) is None
    assert parse_cursor("0") == Cursor(None, 0)
    assert parse_cursor("42") == Cursor(None, 42)
    assert parse_cursor("k3v9q2xa-42") == Cursor("k3v9q2xa", 42)
    assert str(parse_cursor("k3v9q2xa-42")) == "k3v9q2xa-42"
    for bad in ["-1", "1.5", "abc", "", " 1", "\u0661", "9" * 20, "ABC-1", "a-b-", "a--1",
                "x" * 17 + "-1", "e-" + str(2**63), "e-", "-"]:
        with pytest.raises(ContractError, match="cursor"):
            parse_cursor(bad)


def test_probe_payload():
    payload = make_payload(123, 64)
    assert len(payload) == 64 and payload.startswith("123:")
    assert payload_index(payload) == 123
    assert payload_index("hello") is None
    assert make_payload(12345, 2) == "12345:"
