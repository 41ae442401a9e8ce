"""Property tests (hypothesis) for every codec in duplexbench/contract.

Two properties each: encode -> decode is the identity (for everything the
contract allows), and arbitrary input never raises anything but the contract's
own error (:class:`ContractError`) -- a parser that raises TypeError or
IndexError on hostile bytes would be a 500 or a crash in a server or client.
Bounded: a fixed number of examples per property, no deadline (shared CI cores).
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duplexbench.contract import (
    MAX_TS,
    ContractError,
    Cursor,
    Envelope,
    Reset,
    decode_envelope,
    decode_message,
    encode_envelope,
    encode_reset,
    format_cursor,
    parse_cursor,
    parse_uint,
    validate_topic,
)
from duplexbench.contract.longpoll import decode_batch, encode_batch
from duplexbench.contract.ndjson import HEARTBEAT as ND_HB
from duplexbench.contract.ndjson import NDJSONParser, encode_line
from duplexbench.contract.origin import normalise_origin, origin_decision
from duplexbench.contract.sse import (
    HEARTBEAT as SSE_HB,
)
from duplexbench.contract.sse import (
    SSEParser,
    encode_event,
    encode_preamble,
    encode_reset_event,
)
from duplexbench.contract.websocket import (
    decode_publish,
    encode_frame,
    encode_publish,
    parse_frame,
)

#: Per test, not a global profile: other modules keep hypothesis' defaults.
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

topics = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
epochs = st.from_regex(r"[a-z0-9]{1,16}", fullmatch=True)
seqs = st.integers(min_value=1, max_value=2**63 - 1)
tss = st.integers(min_value=0, max_value=MAX_TS)
texts = st.text(max_size=200)
junk = st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode))
envelopes = st.builds(Envelope, seqs, topics, tss, texts)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


# -- envelope --

@BOUNDED
@given(envelopes)
def test_envelope_round_trip(env):
    assert decode_envelope(encode_envelope(env.seq, env.topic, env.ts, env.data)) == env
    raw = encode_envelope(env.seq, env.topic, env.ts, env.data)
    assert list(json.loads(raw)) == ["seq", "topic", "ts", "data"]  # key order, compact


@BOUNDED
@given(junk)
def test_envelope_decoder_raises_only_contract_errors(raw):
    try:
        decode_envelope(raw)
    except ContractError:
        pass


@BOUNDED
@given(st.text(max_size=100))
def test_topic_validation(text):
    try:
        assert validate_topic(text) == text
    except ContractError:
        pass


# -- cursor, reset, uint --

@BOUNDED
@given(st.one_of(st.none(), epochs), st.integers(min_value=0, max_value=2**63 - 1))
def test_cursor_round_trip(epoch, seq):
    assert parse_cursor(format_cursor(epoch, seq)) == Cursor(epoch, seq)


@BOUNDED
@given(st.text(max_size=60))
def test_cursor_parser_raises_only_contract_errors(text):
    try:
        cursor = parse_cursor(text)
    except ContractError:
        return
    assert str(cursor) == text.lstrip("0") or int(text.rpartition("-")[2]) == cursor.seq


@BOUNDED
@given(st.text(max_size=30))
def test_uint_parser(text):
    try:
        value = parse_uint(text, "ts")
    except ContractError:
        return
    assert 0 <= value <= MAX_TS and int(text) == value


@BOUNDED
@given(epochs, st.integers(min_value=0, max_value=2**63 - 1), st.integers(min_value=0, max_value=2**63 - 1))
def test_reset_round_trip(epoch, k, last):
    assert decode_message(encode_reset(epoch, k, last)) == Reset(epoch, f"{epoch}-{k}", last)


@BOUNDED
@given(junk)
def test_message_decoder_raises_only_contract_errors(raw):
    try:
        decode_message(raw)
    except ContractError:
        pass


# -- long polling --

@BOUNDED
@given(st.lists(envelopes, max_size=8))
def test_batch_round_trip(envs):
    body = encode_batch([encode_envelope(e.seq, e.topic, e.ts, e.data) for e in envs])
    assert decode_batch(body) == envs


@BOUNDED
@given(junk)
def test_batch_decoder_raises_only_contract_errors(raw):
    try:
        decode_batch(raw)
    except ContractError:
        pass


# -- SSE --

@BOUNDED
@given(epochs, st.lists(envelopes, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_sse_round_trip_in_any_chunking(epoch, envs, cuts):
    stream = encode_preamble(epoch, 0) + SSE_HB + b"".join(
        encode_event(e.seq, encode_envelope(e.seq, e.topic, e.ts, e.data), epoch) for e in envs)
    parser = SSEParser()
    events = [ev for part in splits(stream, cuts) for ev in parser.feed(part) if ev.data]
    assert [decode_envelope(ev.data) for ev in events] == envs
    assert [ev.id for ev in events] == [f"{epoch}-{e.seq}" for e in envs]
    assert parser.last_event_id == f"{epoch}-{envs[-1].seq}"


@BOUNDED
@given(epochs, st.integers(0, 2**40), st.integers(0, 2**40))
def test_sse_reset_event_round_trip(epoch, k, last):
    events = SSEParser().feed(encode_reset_event(encode_reset(epoch, k, last), epoch, k))
    assert events[-1].event == "reset" and events[-1].id == f"{epoch}-{k}"
    assert decode_message(events[-1].data) == Reset(epoch, f"{epoch}-{k}", last)


@BOUNDED
@given(st.lists(junk, max_size=6))
def test_sse_parser_never_raises(chunks):
    parser = SSEParser()
    for chunk in chunks:
        for event in parser.feed(chunk):
            assert isinstance(event.data, str)


# -- NDJSON --

@BOUNDED
@given(st.lists(envelopes, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_ndjson_round_trip_in_any_chunking(envs, cuts):
    stream = ND_HB + b"".join(encode_line(encode_envelope(e.seq, e.topic, e.ts, e.data)) + ND_HB
                              for e in envs)
    parser = NDJSONParser()
    lines = [line for part in splits(stream, cuts) for line in parser.feed(part)]
    assert [decode_envelope(line) for line in lines] == envs


@BOUNDED
@given(st.lists(junk, max_size=6))
def test_ndjson_parser_never_raises(chunks):
    parser = NDJSONParser()
    for chunk in chunks:
        for line in parser.feed(chunk):
            try:
                decode_message(line)
            except ContractError:
                pass


# -- WebSocket framing and publish frames --

@given(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]), st.binary(max_size=70_000),
       st.one_of(st.none(), st.binary(min_size=4, max_size=4)), st.booleans())
@settings(BOUNDED, max_examples=60)
def test_frame_round_trip(opcode, payload, mask, fin):
    frame = encode_frame(opcode, payload, mask, fin)
    assert parse_frame(frame) == (opcode, fin, payload, len(frame))
    assert parse_frame(frame[:-1]) is None  # incomplete: wait for more, never guess


@BOUNDED
@given(st.binary(max_size=300))
def test_frame_parser_never_raises(data):
    parsed = parse_frame(data)
    assert parsed is None or 2 <= parsed[3] <= len(data)


@BOUNDED
@given(texts, st.one_of(st.none(), tss))
def test_publish_round_trip(data, ts):
    assert decode_publish(encode_publish(data, ts)) == (data, ts)
    if ts is not None:  # JavaScript's form: the digits as a string
        assert decode_publish(json.dumps({"data": data, "ts": str(ts)})) == (data, ts)


@BOUNDED
@given(st.one_of(junk, st.text(max_size=200)))
def test_publish_decoder_raises_only_contract_errors(raw):
    try:
        data, ts = decode_publish(raw)
    except ContractError:
        return
    assert isinstance(data, str) and (ts is None or 0 <= ts <= MAX_TS)


# -- Origin policy --

@BOUNDED
@given(st.text(max_size=80), st.text(max_size=40), st.lists(st.text(max_size=40), max_size=3))
def test_origin_policy_never_raises(origin, host, allow):
    assert origin_decision(origin, "http", host, tuple(allow)) in ("same", "cross", "deny")
    assert normalise_origin(origin) is None or len(normalise_origin(origin)) == 3
