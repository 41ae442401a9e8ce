"""Plain TCP framing (duplexbench/contract/tcp.py): every line byte for byte, both directions,
the incremental splitter, and hostile input raising only ContractError."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duplexbench.contract import (
    MAX_TS,
    ContractError,
    Cursor,
    Envelope,
    Reset,
    Transport,
    encode_envelope,
    encode_reset,
    parse_cursor,
)
from duplexbench.contract.tcp import (
    HEARTBEAT,
    Hello,
    LineSplitter,
    LineTooLong,
    Subscribe,
    TcpError,
    decode_line,
    decode_publish_line,
    decode_subscribe,
    encode_error,
    encode_hello,
    encode_line,
    encode_publish_line,
    encode_subscribe,
)

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_transport_tcp_is_its_own_mount():
    assert Transport("tcp").server_mount == "tcp"
    assert [t.value for t in Transport] == ["longpoll", "sse", "ndjson", "websocket", "tcp"]


# -- server -> client --------------------------------------------------------------------------


def test_a_delivery_is_the_envelope_and_one_newline():
    env = encode_envelope(7, "t", 123, 'x\n"y"\u2028é')
    assert encode_line(env) == env + b"\n"
    assert b"\n" not in env  # JSON escapes it: lines are unambiguous
    assert len(encode_line(env)) == len(env) + 1
    assert HEARTBEAT == b"\n"


def test_hello_line_bytes():
    assert encode_hello("k3v9q2xa", 42) == b'{"event":"hello","epoch":"k3v9q2xa","cursor":"k3v9q2xa-42"}\n'
    assert encode_hello("k3v9q2xa") == b'{"event":"hello","epoch":"k3v9q2xa"}\n'
    assert decode_line(encode_hello("e1", 0)[:-1]) == Hello("e1", "e1-0")
    assert decode_line(encode_hello("e1")[:-1]) == Hello("e1", None)


def test_reset_and_error_lines():
    reset = encode_reset("new1", 0, 5)
    assert decode_line(reset) == Reset("new1", "new1-0", 5)
    line = encode_error(410, "cursor 3 is older", epoch="e1", oldest_seq=11, cursor="e1-10")
    assert line == (b'{"error":"cursor 3 is older","status":410,"epoch":"e1","oldest_seq":11,'
                    b'"cursor":"e1-10"}\n')
    assert decode_line(line[:-1]) == TcpError(410, "cursor 3 is older",
                                              {"epoch": "e1", "oldest_seq": 11, "cursor": "e1-10"})
    assert encode_error(400, "bad é") == '{"error":"bad é","status":400}\n'.encode()


def test_decode_line_envelopes():
    env = encode_envelope(2, "t", 2**63 - 1, "two")
    assert decode_line(env) == Envelope(2, "t", 2**63 - 1, "two")
    with pytest.raises(ContractError):
        decode_line(b"[1]")
    with pytest.raises(ContractError):
        decode_line(b'{"error":"no status"}')


# -- client -> server --------------------------------------------------------------------------


def test_subscribe_line_bytes_and_round_trip():
    assert encode_subscribe("t") == b'{"topic":"t"}\n'
    assert encode_subscribe("t", "e1-5") == b'{"topic":"t","cursor":"e1-5"}\n'
    assert encode_subscribe("t", subscribe=False) == b'{"topic":"t","subscribe":false}\n'
    assert decode_subscribe(b'{"topic":"t"}') == Subscribe("t", None, True)
    assert decode_subscribe(b'{"topic":"t","cursor":"e1-5"}') == Subscribe("t", Cursor("e1", 5))
    assert decode_subscribe(b'{"topic":"t","cursor":"0"}') == Subscribe("t", Cursor(None, 0))
    assert decode_subscribe(b'{"topic":"t","subscribe":false,"x":1}\r') == Subscribe("t", None, False)


@pytest.mark.parametrize("line,words", [
    (b"SUB t", "not JSON"), (b"[]", "must be"), (b"{}", "needs \"topic\""),
    (b'{"topic":5}', "needs \"topic\""), (b'{"topic":"a b"}', "bad topic"),
    (b'{"topic":"' + b"x" * 65 + b'"}', "bad topic"), (b'{"topic":"t","cursor":5}', "string"),
    (b'{"topic":"t","cursor":"E-1"}', "bad cursor"), (b'{"topic":"t","cursor":"-1"}', "bad cursor"),
    (b'{"topic":"t","subscribe":0}', "true or false"), (b"\xff\xfe", "not JSON"),
])
def test_bad_subscribe_lines_say_why(line, words):
    with pytest.raises(ContractError, match=words):
        decode_subscribe(line)


def test_publish_line_is_the_websocket_publish_frame_plus_newline():
    assert encode_publish_line("hi", 5) == b'{"ts":5,"data":"hi"}\n'
    assert decode_publish_line(b'{"data":"hi","ts":"9007199254740995"}') == ("hi", 9007199254740995)
    for bad in (b'{"data":1}', b'{"data":"x","ts":-1}', b'{"data":"x","ts":1.5}', b'{"data":"\\ud800"}'):
        with pytest.raises(ContractError):
            decode_publish_line(bad)


# -- the splitter ------------------------------------------------------------------------------


def test_splitter_keeps_partial_lines_and_drops_blank_ones():
    splitter = LineSplitter(100)
    assert splitter.feed(b'{"a"') == [] and splitter.pending == 4
    assert splitter.feed(b':1}\n\n \r\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert splitter.feed(b":3}\n") == [b'{"c":3}'] and splitter.pending == 0


def test_splitter_refuses_an_overlong_line_before_it_ends():
    splitter = LineSplitter(10)
    assert splitter.feed(b"x" * 10) == []
    with pytest.raises(LineTooLong, match="exceeds 10 bytes"):
        splitter.feed(b"x")
    with pytest.raises(LineTooLong):
        LineSplitter(10).feed(b"y" * 11 + b"\n")
    assert issubclass(LineTooLong, ContractError)


# -- properties --------------------------------------------------------------------------------

topics = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
envelopes = st.builds(Envelope, st.integers(1, 2**63 - 1), topics, st.integers(0, MAX_TS),
                      st.text(max_size=200))


@BOUNDED
@given(st.lists(envelopes, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_stream_round_trip_in_any_chunking(envs, cuts):
    stream = encode_hello("e1", 0) + b"".join(
        encode_line(encode_envelope(e.seq, e.topic, e.ts, e.data)) + HEARTBEAT for e in envs)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    edges = [0, *points, len(stream)]
    splitter = LineSplitter(1 << 20)
    lines = [line for a, b in zip(edges, edges[1:]) for line in splitter.feed(stream[a:b])]
    assert [decode_line(line) for line in lines] == [Hello("e1", "e1-0"), *envs]


@BOUNDED
@given(topics, st.one_of(st.none(), st.from_regex(r"([a-z0-9]{1,16}-)?[0-9]{1,18}", fullmatch=True)),
       st.booleans())
def test_subscribe_round_trip(topic, cursor, subscribe):
    line = encode_subscribe(topic, cursor, subscribe)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_subscribe(line[:-1]) == Subscribe(topic, parse_cursor(cursor), subscribe)


@BOUNDED
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_decoders_raise_only_contract_errors(raw):
    for decode in (decode_line, decode_subscribe, decode_publish_line):
        try:
            decode(raw)
        except ContractError:
            pass
    try:
        LineSplitter(64).feed(raw)
    except LineTooLong:
        pass


def test_every_server_line_is_one_json_object():
    for line in (encode_hello("e", 1), encode_error(503, "x"), encode_subscribe("t"),
                 encode_publish_line("d", 1)):
        assert isinstance(json.loads(line), dict) and line.count(b"\n") == 1
