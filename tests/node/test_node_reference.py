"""The Node.js reference server (servers/node) against duplexbench's own clients and the contract.

Skipped, with the reason, when Node 20+ or servers/node/node_modules (``make node``)
is missing: the Python suite must not need Node. Every check runs a real
``node server.js`` on a loopback port: the load generator on every transport
(lost = 0), the envelope bytes, the round-2 contract (epoch, E-N cursors,
reset, SSE preamble, Origin policy, Close echo, heartbeats, slow consumers,
graceful stop).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from _timeouts import scaled

from clients.spec import LoadSpec
from duplexbench.benchmarks.stacks import NodeServerProcess, node_unavailable
from duplexbench.contract import encode_envelope
from duplexbench.contract.websocket import OP_CLOSE, OP_TEXT, encode_frame, parse_frame

_REASON = node_unavailable()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"Node reference unavailable: {_REASON}")


@pytest.fixture(scope="module")
def node_url():
    with NodeServerProcess("all", args=["--heartbeat", "0.3", "--retention", "50"]) as server:
        yield server.url


def http(url, method="GET", body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=scaled(5)) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def publish(base, topic, data, ts=None):
    query = {"topic": topic} | ({"ts": str(ts)} if ts is not None else {})
    status, _, body = http(f"{base}/publish?{urllib.parse.urlencode(query)}", "POST", data.encode())
    assert status == 200, body
    return json.loads(body)["seq"]


def raw(base, request: bytes) -> socket.socket:
    host, port = base.split("://")[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=scaled(5))
    sock.sendall(request)
    return sock


def read_until(sock, marker: bytes, data: bytes = b"") -> bytes:
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def ws_open(base, target: str, extra: bytes = b"") -> tuple[socket.socket, bytes]:
    key = base64.b64encode(os.urandom(16))
    sock = raw(base, b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
               % (target.encode(), key, extra))
    data = read_until(sock, b"\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, head + b"\r\n\r\n" + rest


def ws_frames(sock, buffer: bytes, count: int) -> list[tuple[int, bytes]]:
    frames = []
    while len(frames) < count:
        parsed = parse_frame(buffer)
        if parsed is None:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(frames)} frames"
            buffer += chunk
            continue
        opcode, _, payload, used = parsed
        frames.append((opcode, payload))
        buffer = buffer[used:]
    return frames


# -- duplexbench's own load generator, every transport ---------------------------------------


def run_loadgen(spec: LoadSpec, tmp_path) -> dict:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec.to_json())
    proc = subprocess.run([sys.executable, "-m", "clients.loadgen", str(spec_path), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=scaled(60))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((tmp_path / "out" / "counters.json").read_text())


@pytest.mark.parametrize("transport,upstream", [
    ("longpoll", "post"), ("sse", "post"), ("ndjson", "post"), ("websocket", "post"),
    ("websocket", "transport"),
])
def test_loadgen_loses_nothing(node_url, tmp_path, transport, upstream):
    spec = LoadSpec(transport=transport, sub_url=node_url, clients=20, rate=60.0, upstream=upstream,
                    warmup_s=0.3, duration_s=1.0, drain_s=3.0,
                    topic_prefix=f"lg-{transport}-{upstream}-{time.monotonic_ns()}")
    counters = run_loadgen(spec, tmp_path)
    assert counters["complete"], counters.get("reason")
    assert counters["lost"] == 0 and counters["duplicated"] == 0 and counters["reordered"] == 0
    assert counters["delivered"] == counters["expected"] > 0


# -- envelope bytes and timestamps -----------------------------------------------------------


def test_envelope_bytes_match_the_python_encoder(node_url):
    tricky = 'a\x00\x1f\x7f\t\n"\\/ é€😀\u2028 <>&'
    big_ts = 2**63 - 1  # beyond 2^53: a JavaScript Number would round it
    publish(node_url, "env", tricky, ts=big_ts)
    status, headers, body = http(f"{node_url}/poll?topic=env&cursor=0")
    assert status == 200
    assert body == b"[" + encode_envelope(1, "env", big_ts, tricky) + b"]"
    assert http(f"{node_url}/publish?topic=env&ts={2**63}", "POST", b"x")[0] == 400
    assert http(f"{node_url}/publish?topic=env&ts=-1", "POST", b"x")[0] == 400
    assert http(f"{node_url}/publish?topic=env", "POST", b"\xff")[0] == 400


def test_websocket_publish_keeps_big_ts_integer_or_string(node_url):
    sock, rest = ws_open(node_url, "/ws?topic=wsts")
    for frame in ('{"ts":9007199254740993,"data":"int"}', '{"data":"str","ts":"9007199254740995"}'):
        sock.sendall(encode_frame(OP_TEXT, frame.encode(), mask=os.urandom(4)))
    (_, first), (_, second) = ws_frames(sock, rest.split(b"\r\n\r\n", 1)[1], 2)
    assert json.loads(first)["ts"] == 9007199254740993
    assert json.loads(second)["ts"] == 9007199254740995
    sock.sendall(encode_frame(OP_TEXT, b'{"data":"x","ts":1.5}', mask=os.urandom(4)))
    ((opcode, payload),) = ws_frames(sock, b"", 1)
    assert opcode == OP_CLOSE and int.from_bytes(payload[:2], "big") == 1008
    sock.close()


# -- contract round 2 --------------------------------------------------------------------------


def test_epoch_cursors_410_400_and_reset(node_url):
    status, headers, body = http(f"{node_url}/healthz")
    epoch = json.loads(body)["epoch"]
    assert headers["Duplexbench-Epoch"] == epoch and status == 200
    for i in range(60):  # retention is 50: seqs 1-10 are gone
        publish(node_url, "cur", f"m{i}")
    status, headers, body = http(f"{node_url}/poll?topic=cur&cursor={epoch}-58")
    assert status == 200 and headers["Duplexbench-Epoch"] == epoch
    assert [m["seq"] for m in json.loads(body)] == [59, 60]
    status, _, body = http(f"{node_url}/poll?topic=cur&cursor={epoch}-3")
    gone = json.loads(body)
    assert status == 410 and gone["oldest_seq"] == 11 and gone["cursor"] == f"{epoch}-10"
    status, _, body = http(f"{node_url}/poll?topic=cur&cursor=0&max=1")  # 0: never 410
    assert status == 200 and json.loads(body)[0]["seq"] == 11
    status, _, body = http(f"{node_url}/poll?topic=cur&cursor=61")
    assert status == 400 and json.loads(body)["last_seq"] == 60
    assert http(f"{node_url}/poll?topic=cur&max=0")[0] == 400
    status, _, body = http(f"{node_url}/poll?topic=cur&cursor=zzzz-5")
    reset = json.loads(body)
    assert status == 410 and reset["event"] == "reset" and reset["epoch"] == epoch
    assert reset["cursor"] == f"{epoch}-10" and reset["last_seq"] == 60 and "error" in reset


def test_sse_preamble_reset_and_heartbeat(node_url):
    epoch = json.loads(http(f"{node_url}/healthz")[2])["epoch"]
    publish(node_url, "sse", "one")
    sock = raw(node_url, b"GET /stream?topic=sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    data = read_until(sock, b": hb\n\n")  # --heartbeat 0.3 s of silence
    assert f"retry: 1000\nid: {epoch}-1\n\n".encode() in data
    sock.close()
    sock = raw(node_url, b"GET /stream?topic=sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                         b"Last-Event-ID: other-7\r\n\r\n")
    data = read_until(sock, b'"data":"one"}\n\n')
    assert f"event: reset\nid: {epoch}-0\ndata: ".encode() in data
    assert f"id: {epoch}-1\ndata: ".encode() in data
    sock.close()


def test_ndjson_and_websocket_reset_first(node_url):
    epoch = json.loads(http(f"{node_url}/healthz")[2])["epoch"]
    publish(node_url, "rst", "a")
    sock = raw(node_url, b"GET /stream?topic=rst&cursor=old1-3 HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_until(sock, b'"data":"a"}')
    first = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[1].split(b"\n")[0]  # after the chunk size
    assert b'"event":"reset"' in first and f'"cursor":"{epoch}-0"'.encode() in first
    sock.close()
    sock, rest = ws_open(node_url, "/ws?topic=rst&cursor=old1-3")
    assert f"Duplexbench-Epoch: {epoch}".encode() in rest
    (_, reset), (_, env) = ws_frames(sock, rest.split(b"\r\n\r\n", 1)[1], 2)
    assert json.loads(reset)["event"] == "reset" and json.loads(env)["data"] == "a"
    sock.close()


def test_origin_policy_and_preflight(node_url):
    evil = {"Origin": "http://evil.example"}
    for method, path in [("POST", "/publish?topic=o"), ("GET", "/poll?topic=o&timeout=0"),
                         ("OPTIONS", "/stream")]:
        status, _, body = http(node_url + path, method, b"x" if method == "POST" else None, evil)
        assert status == 403 and json.loads(body)["error"] == "origin not allowed", path
    same = {"Origin": node_url}
    assert http(f"{node_url}/poll?topic=o&timeout=0", headers=same)[0] == 204
    with NodeServerProcess("all", args=["--allow-origin", "http://app.example"]) as server:
        status, headers, _ = http(f"{server.url}/poll?topic=o&timeout=0",
                                  headers={"Origin": "http://app.example"})
        assert status == 204 and headers["Access-Control-Allow-Origin"] == "http://app.example"
        assert headers["Access-Control-Expose-Headers"] == "Duplexbench-Epoch"
        status, headers, _ = http(f"{server.url}/publish", "OPTIONS", headers={"Origin": "http://app.example"})
        assert status == 204 and "Last-Event-ID" in headers["Access-Control-Allow-Headers"]


def test_websocket_handshake_errors_and_close_echo(node_url):
    sock = raw(node_url, b"GET /ws?topic=k HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = read_until(sock, b"}")
    assert data.startswith(b"HTTP/1.1 400") and b"missing or invalid Sec-WebSocket-Key" in data
    sock.close()
    for payload, echoed in [(b"", 1000), ((4001).to_bytes(2, "big") + b"bye", 4001)]:
        sock, rest = ws_open(node_url, "/ws?topic=k")
        sock.sendall(encode_frame(OP_CLOSE, payload, mask=os.urandom(4)))
        ((opcode, reply),) = ws_frames(sock, rest.split(b"\r\n\r\n", 1)[1], 1)
        assert opcode == OP_CLOSE and int.from_bytes(reply[:2], "big") == echoed
        sock.close()


def test_slow_consumer_is_dropped_and_others_keep_receiving():
    """A stream that stops reading fills its queue: publishers wait (fairness), then after
    --slow-grace it is dropped and counted, and the WebSocket reader got every message."""
    with NodeServerProcess("all", args=["--queue-limit", "20", "--slow-grace", "0.5"]) as server:
        host, port = server.url.split("://")[1].rsplit(":", 1)
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, int(port)))
        stalled.sendall(b"GET /stream?topic=slow HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(stalled, b"\r\n\r\n")
        good, rest = ws_open(server.url, "/ws?topic=slow")
        received: list = []
        buffer = rest.split(b"\r\n\r\n", 1)[1]
        reader = threading.Thread(target=lambda: received.extend(ws_frames(good, buffer, 200)))
        reader.start()
        for i in range(200):
            publish(server.url, "slow", f"{i}:" + "x" * 20000)
        reader.join(scaled(20))
        assert [json.loads(p)["seq"] for _, p in received] == list(range(1, 201))
        status, _, body = http(server.url + "/metrics")
        assert 'duplexbench_slow_consumer_drops_total{transport="ndjson"} 1' in body.decode()
        stalled.close()
        good.close()


def test_back_pressured_reader_gets_every_message_once_in_order():
    """A reader slower than the publisher (its socket buffer fills, write() returns false, its
    queue of 5 fills, the publisher waits) but not stuck: nothing dropped, every message once,
    in order, beside a fast reader."""
    with NodeServerProcess("all", args=["--queue-limit", "5", "--slow-grace", "3"]) as server:
        host, port = server.url.split("://")[1].rsplit(":", 1)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(scaled(10))
        slow.connect((host, int(port)))
        slow.sendall(b"GET /stream?topic=bp HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_until(slow, b"\r\n\r\n")
        fast, rest = ws_open(server.url, "/ws?topic=bp")
        got_fast: list = []
        fast_reader = threading.Thread(
            target=lambda: got_fast.extend(ws_frames(fast, rest.split(b"\r\n\r\n", 1)[1], 60)))
        fast_reader.start()
        publisher = threading.Thread(target=lambda: [  # 4.2 MB: beyond tcp_wmem, so write() says false
            publish(server.url, "bp", f"{i}:" + "y" * 70000) for i in range(60)])
        publisher.start()
        body = head.split(b"\r\n\r\n", 1)[1]
        while body.count(b'"seq":') < 60 or not body.endswith(b"\n\r\n"):  # the whole last chunk
            time.sleep(0.0005)  # a slow reader
            chunk = slow.recv(16384)
            assert chunk, "the slow reader was disconnected"
            body += chunk
        fast_reader.join(scaled(10))
        publisher.join(scaled(10))
        seqs = [json.loads(line)["seq"] for line in _ndjson_lines(body)]
        assert seqs == list(range(1, 61))
        assert [json.loads(p)["seq"] for _, p in got_fast] == list(range(1, 61))
        assert 'slow_consumer_drops_total{transport="ndjson"} 0' in http(server.url + "/metrics")[2].decode()
        slow.close()
        fast.close()


def _ndjson_lines(chunked: bytes) -> list[bytes]:
    """De-chunk an HTTP/1.1 chunked body and split it into NDJSON lines."""
    out, rest = b"", chunked
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return [line for line in out.split(b"\n") if line.strip()]


def test_sigterm_ends_streams_and_closes_websockets_1001():
    server = NodeServerProcess("all").start()
    try:
        stream = raw(server.url, b"GET /stream?topic=bye HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(stream, b"\r\n\r\n")
        ws, rest = ws_open(server.url, "/ws?topic=bye")
        publish(server.url, "bye", "last")
        server.process.send_signal(signal.SIGTERM)
        ended = read_until(stream, b"\r\n0\r\n\r\n")
        assert b'"data":"last"' in ended and ended.endswith(b"\r\n0\r\n\r\n")  # the final chunk
        (_, env), (opcode, payload) = ws_frames(ws, rest.split(b"\r\n\r\n", 1)[1], 2)
        assert json.loads(env)["data"] == "last"
        assert opcode == OP_CLOSE and int.from_bytes(payload[:2], "big") == 1001
        ws.sendall(encode_frame(OP_CLOSE, payload[:2], mask=os.urandom(4)))  # finish the handshake
        started = time.monotonic()
        stream.close()
        ws.close()
        assert server.process.wait(scaled(10)) == 0
        assert time.monotonic() - started < 2.5  # gone with its clients, not after --shutdown-timeout
    finally:
        server.stop()


def test_node_reference_passes_the_probe(tmp_path):
    """Every rule of `python -m duplexbench probe`, none skipped: the options it needs are given
    (the HTTP/2 rules need a TLS + --http2 server: tests/node/test_node_h2.py runs them)."""
    args = ["--heartbeat", "0.5", "--retention", "20", "--allow-origin", "http://app.example"]
    with NodeServerProcess("all", args=args) as server:
        report = tmp_path / "probe.json"
        proc = subprocess.run(
            [sys.executable, "-m", "duplexbench", "probe", server.url, "--heartbeat", "0.5",
             "--retention", "20", "--allowed-origin", "http://app.example", "--json", str(report),
             "--skip", "h2*"],
            capture_output=True, text=True, timeout=scaled(120))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 fail, 0 skip" in proc.stdout, proc.stdout[-3000:]
