"""RFC 6455 facts: the accept key, frame header sizes, frames in both directions."""

import os

import pytest

from duplexbench.contract import ContractError
from duplexbench.contract.websocket import (
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    accept_key,
    decode_publish,
    encode_frame,
    encode_publish,
    frame_header_size,
    parse_frame,
)


def test_accept_key_rfc6455_example():
    # RFC 6455 §1.3
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("length,header", [(0, 2), (100, 2), (125, 2), (126, 4), (1000, 4),
                                           (65535, 4), (65536, 10), (70000, 10)])
def test_header_sizes(length, header):
    assert frame_header_size(length, masked=False) == header
    assert frame_header_size(length, masked=True) == header + 4
    assert len(encode_frame(OP_TEXT, b"x" * length)) == length + header
    assert len(encode_frame(OP_TEXT, b"x" * length, mask=b"abcd")) == length + header + 4


def test_known_bytes():
    # RFC 6455 §5.7: unmasked "Hello" and masked "Hello"
    assert encode_frame(OP_TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert encode_frame(OP_TEXT, b"Hello", mask=bytes.fromhex("37fa213d")) == bytes.fromhex(
        "818537fa213d7f9f4d5158"
    )
    assert encode_frame(OP_CLOSE, (1000).to_bytes(2, "big")) == b"\x88\x02\x03\xe8"


# Control frames (Ping) carry at most 125 bytes, so they only come small.
FRAMES = [(OP_TEXT, n) for n in (0, 100, 1000, 70000)] + [(OP_PING, n) for n in (0, 100, 125)]


@pytest.mark.parametrize("mask", [None, b"\x01\x02\x03\x04"], ids=["server-to-client", "client-to-server"])
@pytest.mark.parametrize("opcode,length", FRAMES)
def test_round_trip_both_directions(opcode, length, mask):
    payload = os.urandom(length)
    frame = encode_frame(opcode, payload, mask=mask)
    assert parse_frame(frame) == (opcode, True, payload, len(frame))
    # Partial input asks for more; trailing bytes are left for the next frame.
    assert parse_frame(frame[:-1] if length else frame[:1]) is None
    assert parse_frame(frame + b"\x81")[3] == len(frame)


def test_fin_bit():
    frame = encode_frame(OP_TEXT, b"part", fin=False)
    assert frame[0] == 0x01 and parse_frame(frame)[1] is False


def test_publish_frames():
    assert encode_publish("hi") == '{"data":"hi"}'
    assert decode_publish(encode_publish("hi", 5)) == ("hi", 5)
    assert decode_publish('{"data":"x"}') == ("x", None)
    # JavaScript cannot hold ns in a number: ts may be a string of decimal digits.
    assert decode_publish('{"data":"x","ts":"1764460000123456789"}') == ("x", 1764460000123456789)
    assert decode_publish('{"data":"x","ts":%d}' % (2**63 - 1)) == ("x", 2**63 - 1)
    for bad in ["nope", "[]", '{"data":1}', '{"data":"x","ts":-1}', '{"data":"x","ts":"-1"}',
                '{"data":"x","ts":true}', '{"data":"x","ts":"1.5"}', '{"data":"x","ts":1.5}',
                '{"data":"x","ts":%d}' % 2**63, '{"data":"x","ts":"%d"}' % 2**63, b"\xff"]:
        with pytest.raises(ContractError):
            decode_publish(bad)
