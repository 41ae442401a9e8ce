"""RFC 6455 on the wire, byte for byte, from a raw socket; checks made before the upgrade."""

from __future__ import annotations

import json

import pytest
from _srv_helpers import http, publish, raw_connect, recv_until, ws_handshake
from _timeouts import scaled

from duplexbench.contract import decode_envelope
from duplexbench.contract.websocket import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    encode_frame,
    encode_publish,
    parse_frame,
)
from duplexbench.procs.server import ServerProcess

MASK = b"\x11\x22\x33\x44"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3


@pytest.fixture(scope="module")
def srv():
    with ServerProcess("all", args=["--allow-origin", "https://allowed.example"]) as server:
        yield server


def read_frame(sock, buffered: bytearray) -> tuple[int, bool, bytes, bytes]:
    """(opcode, fin, payload, raw frame bytes)."""
    while True:
        parsed = parse_frame(bytes(buffered))
        if parsed is not None:
            opcode, fin, payload, used = parsed
            raw = bytes(buffered[:used])
            del buffered[:used]
            return opcode, fin, payload, raw
        chunk = sock.recv(65536)
        assert chunk, "server closed the socket mid-frame"
        buffered += chunk


def test_handshake_ping_text_and_close_byte_for_byte(srv):
    sock, head, rest = ws_handshake(srv.url, "/ws?topic=raw1", key=KEY)
    buffered = bytearray(rest)
    with sock:
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 101 Switching Protocols"
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert headers["upgrade"].lower() == "websocket"
        assert "upgrade" in headers["connection"].lower()
        assert "sec-websocket-extensions" not in headers  # no compression: same bytes everywhere

        # Ping -> Pong with the same payload (unmasked, server to client).
        sock.sendall(encode_frame(OP_PING, b"ping-42", mask=MASK))
        opcode, fin, payload, raw = read_frame(sock, buffered)
        assert raw == encode_frame(OP_PONG, b"ping-42")

        # A small envelope arrives as one text frame with a 2-byte header.
        publish(srv.url, "raw1", "hi", ts=1)
        opcode, fin, payload, raw = read_frame(sock, buffered)
        assert (opcode, fin) == (OP_TEXT, True) and len(payload) < 126
        assert raw == bytes([0x81, len(payload)]) + payload
        assert decode_envelope(payload).data == "hi"

        # A masked publish frame from the client comes back as an envelope.
        sock.sendall(encode_frame(OP_TEXT, encode_publish("up", 5).encode(), mask=MASK))
        assert decode_envelope(read_frame(sock, buffered)[2]).data == "up"

        # Close 1000 "bye" -> the server echoes the status code, then closes TCP.
        sock.sendall(encode_frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye", mask=MASK))
        opcode, fin, payload, raw = read_frame(sock, buffered)
        assert raw == b"\x88\x02\x03\xe8"
        sock.settimeout(scaled(5))
        assert sock.recv(100) == b""


def test_large_frame_headers(srv):
    sock, _, rest = ws_handshake(srv.url, "/ws?topic=raw2")
    buffered = bytearray(rest)
    with sock:
        for size, header in [(1000, 4), (70000, 10)]:
            publish(srv.url, "raw2", "x" * size)
            opcode, _, payload, raw = read_frame(sock, buffered)
            assert opcode == OP_TEXT and len(raw) - len(payload) == header


@pytest.mark.parametrize("version", ["8", "12", "14", ""])
def test_wrong_version_is_426_before_upgrade(srv, version):
    sock = raw_connect(srv.url)
    with sock:
        sock.sendall(
            ("GET /ws?topic=v HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\r\n").encode()
        )
        response = recv_until(sock, b"}")
    assert response.startswith(b"HTTP/1.1 426 ")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in response
    assert b"speaks 13" in response


@pytest.mark.parametrize(
    "origin,status",
    [("https://evil.example", 403), ("https://allowed.example", 101), (None, 101), ("same", 101)],
)
def test_origin_allowlist(srv, origin, status):
    host = srv.url.split("://")[1]
    origin = f"http://{host}" if origin == "same" else origin
    extra = f"Origin: {origin}\r\n" if origin else ""
    sock, head, _ = ws_handshake(srv.url, "/ws?topic=o", extra=extra)
    with sock:
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), head


def test_plain_get_on_ws_is_400(srv):
    status, _, body = http(srv.url + "/ws?topic=p")
    assert status == 400 and b"upgrade" in body.lower()


@pytest.mark.parametrize(
    "frame,code",
    [
        (encode_frame(OP_TEXT, b"not json", mask=MASK), 1008),
        (encode_frame(OP_TEXT, b'{"data": 5}', mask=MASK), 1008),
        (encode_frame(0x2, b"\x00\x01", mask=MASK), 1008),
        (encode_frame(OP_TEXT, b'{"data":"\xff\xfe"}', mask=MASK), 1007),
    ],
)
def test_bad_frames_close_with_code(srv, frame, code):
    sock, _, rest = ws_handshake(srv.url, "/ws?topic=bad")
    buffered = bytearray(rest)
    with sock:
        sock.sendall(frame)
        opcode, _, payload, _ = read_frame(sock, buffered)
        assert opcode == OP_CLOSE and int.from_bytes(payload[:2], "big") == code, payload


def test_oversize_frame_closes_1009():
    with ServerProcess("websocket", args=["--max-payload", "1000"]) as server:
        sock, _, rest = ws_handshake(server.url, "/ws?topic=big")
        buffered = bytearray(rest)
        with sock:
            sock.sendall(encode_frame(OP_TEXT, json.dumps({"data": "x" * 5000}).encode(), mask=MASK))
            opcode, _, payload, _ = read_frame(sock, buffered)
            assert opcode == OP_CLOSE and int.from_bytes(payload[:2], "big") == 1009
        # Data over --max-payload inside a frame that fits the frame limit: 1009 too.
        sock, _, rest = ws_handshake(server.url, "/ws?topic=big")
        buffered = bytearray(rest)
        with sock:
            sock.sendall(encode_frame(OP_TEXT, json.dumps({"data": "x" * 1100}).encode(), mask=MASK))
            opcode, _, payload, _ = read_frame(sock, buffered)
            assert opcode == OP_CLOSE and int.from_bytes(payload[:2], "big") == 1009
        # Bytes, not characters: 600 two-byte characters are 1200 bytes.
        sock, _, rest = ws_handshake(server.url, "/ws?topic=big")
        buffered = bytearray(rest)
        with sock:
            frame = json.dumps({"data": "\u00e9" * 600}, ensure_ascii=False).encode()
            sock.sendall(encode_frame(OP_TEXT, frame, mask=MASK))
            opcode, _, payload, _ = read_frame(sock, buffered)
            assert opcode == OP_CLOSE and int.from_bytes(payload[:2], "big") == 1009


def test_server_pings_and_drops_a_peer_that_never_pongs():
    with ServerProcess("websocket", args=["--ping-interval", "0.3", "--ping-timeout", "0.5"]) as server:
        sock, _, rest = ws_handshake(server.url, "/ws?topic=ping")
        buffered = bytearray(rest)
        with sock:
            sock.settimeout(scaled(5))
            opcode, _, _, _ = read_frame(sock, buffered)
            assert opcode == OP_PING
            # No Pong: the server gives up on us (TCP closed, possibly after a Close).
            data = bytearray()
            while chunk := sock.recv(4096):
                data += chunk
        assert http(server.url + "/healthz")[0] == 200


def test_ponging_peer_survives_pings():
    import asyncio

    from websockets.asyncio.client import connect

    with ServerProcess("websocket", args=["--ping-interval", "0.2", "--ping-timeout", "0.5"]) as server:
        async def run():
            async with connect(server.url.replace("http", "ws") + "/ws?topic=pp") as ws:
                await asyncio.sleep(1.0)  # several ping rounds, answered by the library
                publish(server.url, "pp", "alive")
                assert decode_envelope(await asyncio.wait_for(ws.recv(), scaled(5))).data == "alive"
        asyncio.run(run())
