"""A client that stops reading is dropped and counted; everyone else keeps receiving."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from _srv_helpers import metric, recv_until
from _timeouts import scaled
from websockets.asyncio.client import connect as ws_connect

from duplexbench.contract import decode_envelope
from duplexbench.contract.websocket import OP_CLOSE, parse_frame

MESSAGES = 200
PAYLOAD = "x" * 50_000  # 10 MB in all: more than socket buffers can hide


def stalled_socket(base: str, request: bytes) -> socket.socket:
    """Connect with a tiny receive buffer, send the request, then never read again."""
    host, port = base.split("://")[1].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(scaled(5))
    sock.connect((host, int(port)))
    sock.sendall(request)
    return sock


def drain_until_closed(sock: socket.socket) -> bytes:
    """Read what the server sent until it closes the connection."""
    data = bytearray()
    deadline = time.monotonic() + scaled(15)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    else:
        pytest.fail("the slow consumer's connection was never closed")
    return bytes(data)


async def good_subscriber_and_publisher(base: str, topic: str) -> list[int]:
    url = base.replace("http://", "ws://")
    async with ws_connect(f"{url}/ws?topic={topic}", max_size=None) as good, \
               aiohttp.ClientSession() as session:
        async def receive():
            return [decode_envelope(await asyncio.wait_for(good.recv(), scaled(10))).seq
                    for _ in range(MESSAGES)]
        receiving = asyncio.create_task(receive())
        for _ in range(MESSAGES):
            async with session.post(f"{base}/publish?topic={topic}", data=PAYLOAD) as r:
                assert r.status == 200
        return await receiving


@pytest.fixture
def srv(start_server):
    return start_server("all", args=["--queue-limit", "5"])


async def wait_metric(base, name, transport, value):
    deadline = time.monotonic() + scaled(5)
    while metric(base, name, transport) != value and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return metric(base, name, transport)


def test_websocket_slow_consumer_closed_1008_and_counted(srv):
    host = srv.url.split("://")[1]
    slow = stalled_socket(srv.url, (
        f"GET /ws?topic=slow HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    with slow:
        assert b" 101 " in recv_until(slow, b"\r\n\r\n")
        got = asyncio.run(good_subscriber_and_publisher(srv.url, "slow"))
        assert got == list(range(1, MESSAGES + 1))  # the good client lost nothing
        assert asyncio.run(wait_metric(srv.url, "slow_consumer_drops_total", "websocket", 1)) == 1
        # The publisher was held back for the grace period first (burst rule), then the
        # stuck client was dropped and publishing went on.
        assert metric(srv.url, "publisher_waits_total") >= 1
        assert metric(srv.url, "publisher_wait_seconds_total") >= 1.5
        data = drain_until_closed(slow)
    # Whatever reached the slow client is whole frames; a Close, if it got that far, says 1008.
    frames, offset = [], data.index(b"\r\n\r\n") + 4 if b"\r\n\r\n" in data else 0
    while (parsed := parse_frame(data[offset:])) is not None:
        frames.append(parsed)
        offset += parsed[3]
    closes = [payload for opcode, _, payload, _ in frames if opcode == OP_CLOSE]
    assert all(int.from_bytes(p[:2], "big") == 1008 for p in closes)
    assert asyncio.run(wait_metric(srv.url, "connections_open", "websocket", 0)) == 0


@pytest.mark.parametrize("accept,label", [("text/event-stream", "sse"), ("application/x-ndjson", "ndjson")])
def test_stream_slow_consumer_ended_and_counted(srv, accept, label):
    slow = stalled_socket(
        srv.url, f"GET /stream?topic=slow HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n".encode()
    )
    with slow:
        assert b" 200 " in recv_until(slow, b"\r\n\r\n")
        got = asyncio.run(good_subscriber_and_publisher(srv.url, "slow"))
        assert got == list(range(1, MESSAGES + 1))
        assert asyncio.run(wait_metric(srv.url, "slow_consumer_drops_total", label, 1)) == 1
        drain_until_closed(slow)
    assert asyncio.run(wait_metric(srv.url, "connections_open", label, 0)) == 0
    assert metric(srv.url, "slow_consumer_drops_total", "websocket") == 0
