"""Long-poll batches, SSE and NDJSON framing: encoders and incremental parsers."""

import pytest

from duplexbench.contract import ContractError, Envelope, encode_envelope
from duplexbench.contract.longpoll import decode_batch, encode_batch
from duplexbench.contract.ndjson import HEARTBEAT as NDJSON_HB
from duplexbench.contract.ndjson import NDJSONParser, encode_line
from duplexbench.contract.sse import HEARTBEAT as SSE_HB
from duplexbench.contract.sse import SSEEvent, SSEParser, encode_event, encode_retry

E1 = encode_envelope(1, "t", 10, "one")
E2 = encode_envelope(2, "t", 20, "two")


# -- long polling --

def test_batch_round_trip():
    body = encode_batch([E1, E2])
    assert body == b"[" + E1 + b"," + E2 + b"]"
    assert decode_batch(body) == [Envelope(1, "t", 10, "one"), Envelope(2, "t", 20, "two")]
    assert decode_batch(encode_batch([])) == []


@pytest.mark.parametrize("body", [b"{}", b"nope", b"[1]", b'[{"seq":1}]', b'[{"seq":"1","topic":"t","ts":1,"data":""}]'])
def test_batch_rejects(body):
    with pytest.raises(ContractError):
        decode_batch(body)


# -- SSE --

def test_sse_encoders():
    assert encode_event(1, E1) == b"id: 1\ndata: " + E1 + b"\n\n"
    assert encode_retry(1000) == b"retry: 1000\n\n"
    assert SSE_HB == b": hb\n\n"


def test_sse_parses_stream_with_retry_heartbeat_and_events():
    parser = SSEParser()
    events = parser.feed(encode_retry(1000) + SSE_HB + encode_event(1, E1) + encode_event(2, E2))
    assert events == [
        SSEEvent(None, "", "", 1000),
        SSEEvent("1", "message", E1.decode()),
        SSEEvent("2", "message", E2.decode()),
    ]
    assert parser.last_event_id == "2"


def test_sse_byte_by_byte_equals_whole():
    stream = encode_retry(500) + encode_event(1, E1) + SSE_HB + encode_event(2, E2)
    parser = SSEParser()
    events = [e for i in range(len(stream)) for e in parser.feed(stream[i : i + 1])]
    assert events == SSEParser().feed(stream)


@pytest.mark.parametrize("eol", [b"\r\n", b"\r", b"\n"])
def test_sse_line_endings(eol):
    stream = b"id: 7" + eol + b"data: a" + eol + b"data: b" + eol + eol
    assert SSEParser().feed(stream) == [SSEEvent("7", "message", "a\nb")]


def test_sse_crlf_split_across_chunks_is_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"id: 1\r") == []
    assert parser.feed(b"\ndata: x\r") == []
    # If the LF after the CR counted as a second line end, the event would dispatch early
    # without data, and the next line would start a new one.
    assert parser.feed(b"\n\r") == [SSEEvent("1", "message", "x")]
    assert parser.feed(b"\n") == []


def test_sse_cr_split_across_chunks():
    parser = SSEParser()
    assert parser.feed(b"data: y\r") == []
    assert parser.feed(b"\r") == [SSEEvent(None, "message", "y")]


def test_sse_field_without_space_and_comments_and_unknown_fields():
    stream = b":comment\nfoo: bar\nevent:tick\ndata:z\n\n"
    assert SSEParser().feed(stream) == [SSEEvent(None, "tick", "z")]


# -- NDJSON --

def test_ndjson():
    assert encode_line(E1) == E1 + b"\n"
    parser = NDJSONParser()
    stream = encode_line(E1) + NDJSON_HB + encode_line(E2)
    assert parser.feed(stream[:10]) == []
    assert parser.feed(stream[10:]) == [E1, E2]


def test_ndjson_byte_by_byte_and_blank_lines():
    stream = NDJSON_HB + encode_line(E1) + NDJSON_HB + NDJSON_HB + encode_line(E2)
    parser = NDJSONParser()
    assert [line for i in range(len(stream)) for line in parser.feed(stream[i : i + 1])] == [E1, E2]
