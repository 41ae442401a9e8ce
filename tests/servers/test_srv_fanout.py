"""Fan-out and bursts on a real server.

- Must show (issue 12): one publish-only socket sends 10,000 frames back to
  back; an idle WebSocket subscriber and an idle SSE subscriber receive all
  10,000 in order and are not closed (the publisher is back-pressured instead).
- The same for a burst of pipelined ``POST /publish`` requests.
- Must show (issue 15): every message once and in order to a ready connection
  and to back-pressured ones (raw sockets that stop reading for a while).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import aiohttp
import pytest
from _srv_helpers import metric, publish, raw_connect, recv_until, ws_handshake
from _timeouts import scaled
from websockets.asyncio.client import connect as ws_connect

from duplexbench.contract import decode_envelope
from duplexbench.contract.sse import SSEParser
from duplexbench.contract.websocket import OP_TEXT, encode_frame, parse_frame
from duplexbench.procs.server import ServerProcess

BURST = 10_000


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def srv(request):
    # The direct-write path reads the transport's flow control: check both event loops.
    args = ["--uvloop"] if request.param == "uvloop" else []
    with ServerProcess("all", args=args) as server:  # default --queue-limit 1000, --slow-grace 2
        yield server


#: Subscribers that keep reading but look away now and then (a GC pause, a busy
#: tab): slower than the burst, so without the burst rule their queues overflow.
PAUSE_EVERY, PAUSE_S = 2000, 0.3


async def ws_reader(url: str, count: int, ready: asyncio.Event) -> list[int]:
    async with ws_connect(url, max_queue=16) as ws:
        ready.set()
        seqs = []
        for i in range(count):
            seqs.append(decode_envelope(await asyncio.wait_for(ws.recv(), scaled(20))).seq)
            if i % PAUSE_EVERY == 0:
                await asyncio.sleep(PAUSE_S)
        return seqs


async def sse_reader(session, url: str, count: int, ready: asyncio.Event) -> list[int]:
    async with session.get(url, headers={"Accept": "text/event-stream"}) as response:
        parser, seqs = SSEParser(), []
        ready.set()
        while len(seqs) < count:
            chunk = await asyncio.wait_for(response.content.readany(), scaled(20))
            assert chunk, f"stream ended after {len(seqs)} messages"
            before = len(seqs)
            seqs += [decode_envelope(e.data).seq for e in parser.feed(chunk) if e.data]
            if before // PAUSE_EVERY != len(seqs) // PAUSE_EVERY:
                await asyncio.sleep(PAUSE_S)
        return seqs


def burst_subscribers(base: str, topic: str, send_burst) -> tuple[list[int], list[int]]:
    async def run():
        async with aiohttp.ClientSession() as session:
            ready_ws, ready_sse = asyncio.Event(), asyncio.Event()
            ws_task = asyncio.create_task(ws_reader(
                f"{base.replace('http', 'ws')}/ws?topic={topic}", BURST, ready_ws))
            sse_task = asyncio.create_task(sse_reader(
                session, f"{base}/stream?topic={topic}", BURST, ready_sse))
            await ready_ws.wait()
            await ready_sse.wait()
            await asyncio.sleep(0.2)  # both registered
            sender = asyncio.create_task(asyncio.to_thread(send_burst))
            got = await asyncio.gather(ws_task, sse_task)
            await sender
            return got

    return asyncio.run(run())


def test_websocket_burst_reaches_idle_subscribers_in_order(srv):
    # 1 kB each: 10 MB, more than socket buffers absorb, so the queues fill up.
    frames = b"".join(encode_frame(OP_TEXT, json.dumps({"data": f"{i}:" + "b" * 1000}).encode(),
                                   mask=os.urandom(4)) for i in range(BURST))

    def send_burst():
        sock, head, _ = ws_handshake(srv.url, "/ws?topic=burst&subscribe=0")
        with sock:
            assert b" 101 " in head
            sock.settimeout(scaled(30))
            sock.sendall(frames)  # 10,000 frames back to back
            sock.sendall(encode_frame(0x8, b"\x03\xe8", mask=b"abcd"))
            recv_until(sock, b"\x88")  # the Close echo: everything was read

    waits = metric(srv.url, "publisher_waits_total")
    ws_seqs, sse_seqs = burst_subscribers(srv.url, "burst", send_burst)
    assert ws_seqs == list(range(1, BURST + 1))
    assert sse_seqs == list(range(1, BURST + 1))
    assert metric(srv.url, "slow_consumer_drops_total", "websocket") == 0
    assert metric(srv.url, "slow_consumer_drops_total", "sse") == 0
    # The burst rule did the work: the publisher's reads paused while the queues drained.
    assert metric(srv.url, "publisher_waits_total") > waits


def test_pipelined_post_burst_reaches_idle_subscribers(srv):
    host = srv.url.split("://")[1]
    body = b"p" * 1000
    request = (f"POST /publish?topic=pburst HTTP/1.1\r\nHost: {host}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def send_burst():
        sock = raw_connect(srv.url, timeout=30)
        with sock:
            sock.sendall(request * BURST)  # pipelined: the server reads them as fast as it may
            data = b""
            while data.count(b'{"seq":') < BURST:
                chunk = sock.recv(1 << 20)
                assert chunk
                data += chunk
        assert data.count(b"HTTP/1.1 200 ") == BURST

    ws_seqs, sse_seqs = burst_subscribers(srv.url, "pburst", send_burst)
    assert ws_seqs == sse_seqs == list(range(1, BURST + 1))
    assert metric(srv.url, "slow_consumer_drops_total", "websocket") == 0


def stalled(base: str, request: bytes) -> tuple[socket.socket, bytes]:
    host, port = base.split("://")[1].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(scaled(10))
    sock.connect((host, int(port)))
    sock.sendall(request)
    data = recv_until(sock, b"\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    return sock, rest


def read_all(sock: socket.socket, rest: bytes, done) -> bytes:
    data = rest
    deadline = time.monotonic() + scaled(20)
    while not done(data):
        assert time.monotonic() < deadline, "not everything arrived"
        chunk = sock.recv(1 << 20)
        assert chunk, "closed early"
        data += chunk
    return data


def ws_seqs(data: bytes) -> list[int]:
    seqs, offset = [], 0
    while (parsed := parse_frame(data[offset:])) is not None:
        seqs.append(decode_envelope(parsed[2]).seq)
        offset += parsed[3]
    return seqs


def test_back_pressured_raw_clients_get_every_message_once_in_order(srv):
    """Raw WebSocket, SSE and NDJSON clients that stop reading while 300 x 4 kB are
    published (more than their socket buffers: the server queues for them), then read."""
    host = srv.url.split("://")[1]
    topic, count = "bp", 300
    ws_sock, ws_rest = stalled(srv.url, (
        f"GET /ws?topic={topic} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    sse_sock, sse_rest = stalled(srv.url, (
        f"GET /stream?topic={topic} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode())
    nd_sock, nd_rest = stalled(srv.url, f"GET /stream?topic={topic} HTTP/1.0\r\n\r\n".encode())

    async def ready_reader():
        async with ws_connect(f"{srv.url.replace('http', 'ws')}/ws?topic={topic}") as ws:
            for i in range(count):
                await asyncio.to_thread(publish, srv.url, topic, f"{i}:" + "z" * 4000)
            return [decode_envelope(await asyncio.wait_for(ws.recv(), scaled(10))).seq
                    for _ in range(count)]

    assert asyncio.run(ready_reader()) == list(range(1, count + 1))
    time.sleep(0.5)  # stalled a while longer
    with ws_sock, sse_sock, nd_sock:
        data = read_all(ws_sock, ws_rest, lambda d: len(ws_seqs(d)) >= count)
        assert ws_seqs(data) == list(range(1, count + 1))
        data = read_all(sse_sock, sse_rest, lambda d: d.count(b"\n\n") >= count + 1)
        body = b"".join(data.split(b"\r\n")[1::2])  # undo the chunked framing
        events = [e for e in SSEParser().feed(body) if e.data]
        assert [decode_envelope(e.data).seq for e in events] == list(range(1, count + 1))
        data = read_all(nd_sock, nd_rest, lambda d: d.count(b"\n") >= count)  # HTTP/1.0: raw
        assert [decode_envelope(line).seq for line in data.split(b"\n") if line.strip()] == \
            list(range(1, count + 1))
    assert metric(srv.url, "slow_consumer_drops_total", "websocket") == 0


def test_clients_vanishing_mid_flood_leave_no_errors(start_server):
    """Subscribers reset their connections while a publisher floods the topic: the
    fan-out stops writing to them at once (no lost-write warnings, no tracebacks)."""
    server = start_server("all")
    host = server.url.split("://")[1]
    frames = b"".join(encode_frame(OP_TEXT, json.dumps({"data": "v" * 200}).encode(), mask=b"abcd")
                      for _ in range(2000))
    publisher, head, _ = ws_handshake(server.url, "/ws?topic=gone&subscribe=0")
    with publisher:
        for path, accept in [("/ws?topic=gone", None), ("/stream?topic=gone", "text/event-stream"),
                             ("/stream?topic=gone", None)]:
            subs = []
            for _ in range(15):
                if accept is None and path.startswith("/ws"):
                    subs.append(ws_handshake(server.url, path)[0])
                else:
                    sock = raw_connect(server.url)
                    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                                 f"{'Accept: ' + accept + chr(13) + chr(10) if accept else ''}\r\n".encode())
                    subs.append(sock)
            time.sleep(0.1)
            sender = __import__("threading").Thread(target=publisher.sendall, args=(frames,))
            sender.start()
            time.sleep(0.01)
            for sock in subs:  # RST, mid-flood
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
            sender.join()
    time.sleep(0.5)
    for label in ("websocket", "sse", "ndjson"):
        deadline = time.monotonic() + scaled(5)
        while metric(server.url, "connections_open", label) > (1 if label == "websocket" else 0):
            assert time.monotonic() < deadline, f"{label} connections not released"
            time.sleep(0.05)
    noise = [line for line in server.output if "WARNING" in line or "ERROR" in line or "Traceback" in line]
    assert not noise, noise[:5]
