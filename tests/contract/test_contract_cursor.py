"""Contract v2: epochs, the one cursor format, the reset object, the SSE preamble, Origin."""

import json

import pytest

from duplexbench.contract import (
    ContractError,
    Cursor,
    Envelope,
    Reset,
    decode_message,
    encode_envelope,
    encode_reset,
    format_cursor,
    new_epoch,
    parse_uint,
)
from duplexbench.contract.cursor import EPOCH_PATTERN
from duplexbench.contract.origin import cors_headers, normalise_origin, origin_decision
from duplexbench.contract.sse import (
    SSEEvent,
    SSEParser,
    encode_event,
    encode_preamble,
    encode_reset_event,
)


def test_epochs_are_tokens_and_differ():
    epochs = {new_epoch() for _ in range(50)}
    assert len(epochs) == 50
    assert all(EPOCH_PATTERN.fullmatch(e) and len(e) == 8 for e in epochs)


def test_format_cursor():
    assert format_cursor("abc", 7) == "abc-7"
    assert format_cursor(None, 7) == "7"
    assert str(Cursor("abc", 0)) == "abc-0"


def test_reset_object_bytes_and_decode():
    raw = encode_reset("new1", 0, 12)
    assert raw == b'{"event":"reset","epoch":"new1","cursor":"new1-0","last_seq":12}'
    reset = decode_message(raw)
    assert reset == Reset("new1", "new1-0", 12) and reset.seq == 0
    assert decode_message(encode_envelope(1, "t", 2, "x")) == Envelope(1, "t", 2, "x")
    # An envelope whose data mentions "event" is still an envelope.
    assert decode_message(encode_envelope(1, "t", 2, '"event"')).data == '"event"'
    for bad in [b'{"event":"reset","epoch":"A","cursor":"A-0","last_seq":0}',
                b'{"event":"reset","epoch":"a","cursor":"b-0","last_seq":0}',
                b'{"event":"reset","epoch":"a","cursor":"a-0","last_seq":-1}',
                b'{"event":"other"}', b'{"event"']:
        with pytest.raises(ContractError):
            decode_message(bad)


def test_sse_preamble_sets_last_event_id_without_an_event():
    parser = SSEParser()
    events = parser.feed(encode_preamble("ep", 5))
    assert events == [SSEEvent(None, "", "", 1000)]  # no data: nothing dispatched as a message
    assert parser.last_event_id == "ep-5"
    events = parser.feed(encode_event(6, b'{"seq":6}', "ep"))
    assert events == [SSEEvent("ep-6", "message", '{"seq":6}')]
    assert encode_preamble("ep", 5) == b"retry: 1000\nid: ep-5\n\n"


def test_sse_reset_event():
    raw = encode_reset("nw", 0, 3)
    stream = encode_reset_event(raw, "nw", 0)
    assert stream == b"retry: 1000\n\nevent: reset\nid: nw-0\ndata: " + raw + b"\n\n"
    parser = SSEParser()
    events = parser.feed(stream)
    assert events[-1] == SSEEvent("nw-0", "reset", raw.decode())
    assert parser.last_event_id == "nw-0"
    assert json.loads(events[-1].data)["epoch"] == "nw"


def test_parse_uint():
    assert parse_uint("0", "ts") == 0
    assert parse_uint(str(2**63 - 1), "ts") == 2**63 - 1
    assert parse_uint(None, "ts") is None
    for bad in [str(2**63), "-1", "1e3", "", "\u0661"]:
        with pytest.raises(ContractError, match="ts"):
            parse_uint(bad, "ts")


@pytest.mark.parametrize("origin,scheme,host,allow,expected", [
    (None, "http", "h:1", (), "none"),
    ("http://h:1", "http", "h:1", (), "same"),
    ("http://H:1/", "http", "h:1", (), "same"),
    ("http://localhost", "http", "localhost:80", (), "same"),  # default port normalised
    ("https://localhost", "http", "localhost:80", (), "deny"),  # scheme differs
    ("http://h:2", "http", "h:1", (), "deny"),  # port differs
    ("http://evil.example", "http", "h:1", (), "deny"),
    ("http://page.example", "http", "h:1", ("http://page.example",), "cross"),
    ("http://page.example:80", "http", "h:1", ("http://page.example",), "cross"),
    ("http://other.example", "http", "h:1", ("*",), "cross"),
    ("null", "http", "h:1", (), "deny"),
    ("http://[::1]:8080", "http", "[::1]:8080", (), "same"),
])
def test_origin_decision(origin, scheme, host, allow, expected):
    assert origin_decision(origin, scheme, host, allow) == expected


def test_origin_helpers():
    assert normalise_origin("garbage") is None
    assert normalise_origin("http://a@b") is None
    assert normalise_origin("http://h:99999999") is None
    assert cors_headers("http://p")["Access-Control-Expose-Headers"] == "Duplexbench-Epoch"
