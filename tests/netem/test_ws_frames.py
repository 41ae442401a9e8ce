"""RFC 6455 §5.2 on the wire: frame header bytes per message at 100, 1,000 and 70,000 bytes.

"A payload of N bytes" means a WebSocket frame payload of N bytes: the envelope
(server→client) or the publish frame (client→server) is padded to exactly N.
Bytes are counted at the socket by the byte-counting client
(clients/websocket.py counts every byte read or written), and the server→client
direction is checked a second time on a raw socket, independent of any client.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
import urllib.request

import pytest

from clients.publisher import HttpPublisher
from clients.websocket import WebSocketSubscriber
from duplexbench.contract import encode_envelope
from duplexbench.contract.websocket import encode_publish, parse_frame

SIZES = {100: (2, 6), 1000: (4, 8), 70000: (10, 14)}  # N: (server→client, client→server)
TS = 1_000_000_000


def _envelope_data(seq: int, topic: str, size: int) -> str:
    """Data that makes the envelope exactly ``size`` bytes."""
    return "x" * (size - len(encode_envelope(seq, topic, TS, "")))


def _publish_data(size: int) -> str:
    return "y" * (size - len(encode_publish("", TS)))


async def _measure(url: str) -> dict[int, tuple[int, int]]:
    topic = f"frames-{os.getpid()}-{time.monotonic_ns()}"
    got: asyncio.Queue = asyncio.Queue()
    sub = WebSocketSubscriber(url, topic, lambda env, ns: got.put_nowait(env))
    publisher = HttpPublisher(url, pool_size=1)
    await publisher.start()
    await sub.start()
    seq, result = 0, {}
    try:
        for size in SIZES:
            # Server→client: an HTTP publish whose envelope is ``size`` bytes.
            seq += 1
            before = sub.stats.bytes_down
            await publisher.publish(topic, _envelope_data(seq, topic, size), ts=TS)
            env = await asyncio.wait_for(got.get(), 10)
            assert len(encode_envelope(env.seq, env.topic, env.ts, env.data)) == size
            down = sub.stats.bytes_down - before - size
            # Client→server: a publish frame of exactly ``size`` bytes on the WebSocket.
            seq += 1
            before_up = sub.stats.bytes_up
            sub.publish_nowait(_publish_data(size), TS)
            up = sub.stats.bytes_up - before_up - size
            await asyncio.wait_for(got.get(), 10)  # its echo: the server accepted the frame
            result[size] = (down, up)
    finally:
        await sub.close()
        await publisher.close()
    return result


@pytest.fixture
def quiet_server(start_server):
    """Default ping interval (20 s): no ping or pong lands between two counts."""
    return start_server("websocket")


def test_frame_header_bytes_per_message(quiet_server):
    measured = asyncio.run(_measure(quiet_server.url))
    assert measured == SIZES, measured


def _raw_frame_bytes(url: str, size: int) -> int:
    """Bytes a raw socket reads for one ``size``-byte envelope, after the 101 response."""
    host, port = url.removeprefix("http://").split(":")
    topic = f"raw-{os.getpid()}-{size}-{time.monotonic_ns()}"
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall((
            f"GET /ws?topic={topic} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, "closed during the handshake"
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        body = _envelope_data(1, topic, size).encode()
        request = urllib.request.Request(
            f"{url}/publish?topic={topic}&ts={TS}", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        received = rest
        deadline = time.monotonic() + 10
        while len(received) < size + 2 and time.monotonic() < deadline:
            received += sock.recv(1 << 17)
        # The header's own length field says how long the frame is; read to its end.
        while parse_frame(received) is None and time.monotonic() < deadline:
            received += sock.recv(1 << 17)
        opcode, fin, payload, consumed = parse_frame(received)
        assert opcode == 1 and fin and len(payload) == size
        return consumed - size


def test_server_frame_headers_on_a_raw_socket(quiet_server):
    assert {n: _raw_frame_bytes(quiet_server.url, n) for n in SIZES} == {n: s for n, (s, _) in SIZES.items()}
