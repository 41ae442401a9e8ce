"""Contract v2 on a real server: epoch header, SSE preamble, Origin policy (CORS,
preflight, 403 on every endpoint), ts forms, max capping, WebSocket handshake
key and Close echo, the X-Accel-Buffering option."""

from __future__ import annotations

import json
import re
import socket
import struct
import time

import pytest
from _srv_helpers import http, publish, raw_connect, recv_until, ws_handshake

from duplexbench.contract.websocket import OP_CLOSE, OP_TEXT, encode_frame, parse_frame
from duplexbench.procs.server import ServerProcess

ALLOWED = "http://page.example:3000"
WS_HEADERS = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.fixture(scope="module")
def srv():
    args = ["--allow-origin", ALLOWED, "--max-batch", "3", "--heartbeat", "0.5"]
    with ServerProcess("all", args=args) as server:
        yield server


@pytest.fixture(scope="module")
def epoch(srv):
    return json.loads(http(srv.url + "/healthz")[2])["epoch"]


def raw_get(base: str, path: str, headers: str = "", marker: bytes = b"\r\n\r\n") -> bytes:
    sock = raw_connect(base)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {base.split('://')[1]}\r\n{headers}\r\n".encode())
        return recv_until(sock, marker)


def test_epoch_header_on_every_poll_answer(srv, epoch):
    publish(srv.url, "ep", "x")
    for query, status in [("cursor=0", 200), ("timeout=0", 204), ("cursor=zz-5", 410)]:
        got, headers, _ = http(f"{srv.url}/poll?topic=ep&{query}")
        assert got == status and headers["Duplexbench-Epoch"] == epoch


@pytest.mark.parametrize("query,start", [("", 2), ("&cursor=1", 1), ("&cursor=0", 0)])
def test_sse_preamble_carries_the_start_cursor(srv, epoch, query, start):
    topic = f"pre{start}"
    publish(srv.url, topic, "a")
    publish(srv.url, topic, "b")
    data = raw_get(srv.url, f"/stream?topic={topic}{query}", "Accept: text/event-stream\r\n",
                   marker=b"id: %s-%d\n\n" % (epoch.encode(), start))
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"X-Accel-Buffering: no" in head and b"Duplexbench-Epoch: " + epoch.encode() in head
    # The preamble first; then (cursor 0/1) the retained messages.
    assert re.sub(rb"^[0-9a-f]+\r\n", b"", body).startswith(
        b"retry: 1000\nid: %s-%d\n\n" % (epoch.encode(), start))


def test_empty_last_event_id_is_absent(srv, epoch):
    seq = publish(srv.url, "lei", "m")
    data = raw_get(srv.url, f"/stream?topic=lei&cursor={seq - 1}",
                   "Accept: text/event-stream\r\nLast-Event-ID: \r\n", marker=b'"data":"m"')
    assert b"id: %s-%d\ndata: " % (epoch.encode(), seq) in data


def test_max_is_capped_and_zero_refused(srv):
    for i in range(5):
        publish(srv.url, "cap", f"m{i}")
    status, _, body = http(f"{srv.url}/poll?topic=cap&cursor=0&max=1000")
    assert status == 200 and len(json.loads(body)) == 3  # --max-batch 3
    assert http(f"{srv.url}/poll?topic=cap&cursor=0&max=0")[0] == 400


def test_heartbeat_only_after_silence(srv):
    """--heartbeat 0.5: none while messages flow every 0.2 s, one once they stop."""
    sock = raw_connect(srv.url)
    with sock:
        sock.sendall(b"GET /stream?topic=hb HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        data = recv_until(sock, b"\n\n")
        for i in range(8):
            publish(srv.url, "hb", f"m{i}")
            time.sleep(0.2)
        sock.settimeout(0.05)
        try:
            while True:
                data += sock.recv(65536)
        except TimeoutError:
            pass
        assert b'"data":"m7"' in data and b": hb" not in data  # never silent for 0.5 s
        silent = time.monotonic()
        sock.settimeout(5)
        data = recv_until(sock, b": hb\n\n")
        assert time.monotonic() - silent <= 2.0


# -- Origin policy --

ENDPOINTS = [("GET", "/poll?topic=o&timeout=0"), ("GET", "/stream?topic=o"),
             ("POST", "/publish?topic=o"), ("GET", "/ws?topic=o")]


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_preflight_for_an_allowed_origin(srv, method, path):
    status, headers, body = http(srv.url + path, "OPTIONS", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "Last-Event-ID"})
    assert status == 204 and body == b""
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Last-Event-ID" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert headers["Access-Control-Max-Age"] == "600"


def test_cors_headers_on_every_http_endpoint(srv):
    cors = {"Origin": ALLOWED}
    status, headers, _ = http(f"{srv.url}/poll?topic=o&timeout=0", headers=cors)
    assert status == 204
    for h in (headers,):
        assert h["Access-Control-Allow-Origin"] == ALLOWED and h["Vary"] == "Origin"
        assert h["Access-Control-Expose-Headers"] == "Duplexbench-Epoch"
    status, headers, _ = http(f"{srv.url}/publish?topic=o", "POST", b"hi", cors)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ALLOWED
    # Error answers carry them too, or a page could not read its 410.
    status, headers, body = http(f"{srv.url}/poll?topic=o&cursor=other-1", headers=cors)
    assert status == 410 and headers["Access-Control-Allow-Origin"] == ALLOWED
    head = raw_get(srv.url, "/stream?topic=o", f"Origin: {ALLOWED}\r\n")
    assert f"Access-Control-Allow-Origin: {ALLOWED}".encode() in head
    sock, head, _ = ws_handshake(srv.url, "/ws?topic=o", extra=f"Origin: {ALLOWED}\r\n")
    sock.close()
    assert b" 101 " in head and f"Access-Control-Allow-Origin: {ALLOWED}".encode() in head


@pytest.mark.parametrize("method,path", [*ENDPOINTS, ("OPTIONS", "/publish?topic=o")])
def test_disallowed_origin_is_403_everywhere(srv, method, path):
    headers = {"Origin": "http://evil.example", **(WS_HEADERS if path.startswith("/ws") else {})}
    status, _, body = http(srv.url + path.replace("topic=o", "topic=o403"), method,
                           b"x" if method == "POST" else None, headers)
    assert status == 403
    assert json.loads(body) == {"error": "origin not allowed", "origin": "http://evil.example"}
    # Nothing was executed: the topic has never been published to.
    assert http(f"{srv.url}/poll?topic=o403&cursor=0&timeout=0")[0] == 204


def test_same_origin_and_no_origin_are_allowed(srv):
    host = srv.url.split("://")[1]
    for headers in ({}, {"Origin": f"http://{host}"}):
        status, got, _ = http(f"{srv.url}/publish?topic=o", "POST", b"x", headers)
        assert status == 200 and "Access-Control-Allow-Origin" not in got
    assert http(f"{srv.url}/publish?topic=o", "POST", b"x",
                {"Origin": f"https://{host}"})[0] == 403  # scheme differs


def test_behind_a_tls_front_the_forwarded_scheme_is_trusted_only_when_asked(srv):
    """A page at https://front is same-origin with the http upstream when the server was
    told to trust the proxy's X-Forwarded-Proto (nginx terminating TLS); never otherwise."""
    def status(server, headers):
        host = server.url.split("://")[1]
        return http(f"{server.url}/publish?topic=fw", "POST", b"x",
                    {"Origin": f"https://{host}", **headers})[0]

    forwarded = {"X-Forwarded-Proto": "https"}
    assert status(srv, forwarded) == 403  # not asked: the header is the client's word only
    with ServerProcess("all", args=["--trust-forwarded-proto"]) as behind:
        assert status(behind, forwarded) == 200
        assert status(behind, {}) == 403  # no header: the listener's own scheme (http)
        assert status(behind, {"X-Forwarded-Proto": "gopher"}) == 403


# -- WebSocket --

@pytest.mark.parametrize("key", [None, "short", "not base64!!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_handshake_without_or_with_bad_key_is_400(srv, key):
    headers = dict(WS_HEADERS)
    headers.pop("Sec-WebSocket-Key")
    if key is not None:
        headers["Sec-WebSocket-Key"] = key
    sock = raw_connect(srv.url)
    with sock:
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"GET /ws?topic=k HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode())
        data = recv_until(sock, b"}")
    assert data.startswith(b"HTTP/1.1 400")
    assert json.loads(data.partition(b"\r\n\r\n")[2]) == {"error": "missing or invalid Sec-WebSocket-Key"}


def _frames(sock: socket.socket, rest: bytes, count: int) -> list[tuple[int, bytes]]:
    data, frames = rest, []
    while len(frames) < count:
        parsed = parse_frame(data)
        if parsed is None:
            chunk = sock.recv(65536)
            assert chunk, "closed early"
            data += chunk
            continue
        frames.append((parsed[0], parsed[2]))
        data = data[parsed[3]:]
    return frames


@pytest.mark.parametrize("sent,echoed", [(struct.pack("!H", 4000) + b"bye", 4000),
                                         (struct.pack("!H", 1001), 1001), (b"", 1000),
                                         (struct.pack("!H", 1006), 1002)])  # 1006 may not be sent
def test_close_echoes_the_clients_code(srv, sent, echoed):
    sock, head, rest = ws_handshake(srv.url, "/ws?topic=close")
    with sock:
        assert b" 101 " in head
        sock.sendall(encode_frame(OP_CLOSE, sent, mask=b"abcd"))
        (opcode, payload), = _frames(sock, rest, 1)
        assert opcode == OP_CLOSE and struct.unpack("!H", payload[:2])[0] == echoed
        assert sock.recv(10) == b""  # then the server closes TCP


def test_ws_publish_ts_as_digit_string(srv):
    ts = 2**63 - 1
    sock, head, rest = ws_handshake(srv.url, "/ws?topic=tsd")
    with sock:
        sock.sendall(encode_frame(OP_TEXT, json.dumps({"data": "d", "ts": str(ts)}).encode(),
                                  mask=b"abcd"))
        (opcode, payload), = _frames(sock, rest, 1)
    assert opcode == OP_TEXT and json.loads(payload)["ts"] == ts


def test_no_accel_buffering_header_option():
    with ServerProcess("stream", args=["--no-accel-buffering-header"]) as server:
        head = raw_get(server.url, "/stream?topic=t", "Accept: text/event-stream\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"X-Accel-Buffering" not in head


def test_no_data_frame_after_the_servers_close(srv):
    """aiohttp closes 1007 by itself on invalid UTF-8; the hub writes frames straight to
    the socket, so it must stop before that Close, while a publisher keeps going."""
    sock, head, rest = ws_handshake(srv.url, "/ws?topic=after")
    with sock:
        assert b" 101 " in head
        publisher, _, _ = ws_handshake(srv.url, "/ws?topic=after&subscribe=0")
        with publisher:
            def flood(n):
                publisher.sendall(b"".join(encode_frame(OP_TEXT, b'{"data":"x"}', mask=b"abcd")
                                           for _ in range(n)))
            flood(20)
            sock.sendall(encode_frame(OP_TEXT, b"\xff\xfe", mask=b"abcd"))  # invalid UTF-8
            for _ in range(20):  # keep publishing while the server waits for our Close reply
                flood(20)
                time.sleep(0.02)
            sock.settimeout(5)
            data = rest
            while (chunk := sock.recv(65536)):
                data += chunk
    frames, offset = [], 0
    while (parsed := parse_frame(data[offset:])) is not None:
        frames.append(parsed[0])
        offset += parsed[3]
    assert OP_CLOSE in frames
    assert frames.index(OP_CLOSE) == len(frames) - 1, "data frames after the Close"


def test_too_many_topics_is_503_before_streaming_or_upgrading():
    with ServerProcess("all", args=["--max-topics", "1"]) as server:
        publish(server.url, "only", "x")
        head = raw_get(server.url, "/stream?topic=another", "Accept: text/event-stream\r\n", marker=b"}")
        assert head.startswith(b"HTTP/1.1 503") and b"maximum" in head
        sock, head, _ = ws_handshake(server.url, "/ws?topic=another")
        sock.close()
        assert head.startswith(b"HTTP/1.1 503")
        assert http(server.url + "/healthz")[0] == 200


def test_origin_without_a_host_header_is_refused_quickly(srv):
    """No Host (HTTP/1.0): nothing to be same-origin with, so 403; and no DNS lookup."""
    sock = raw_connect(srv.url)
    with sock:
        started = time.monotonic()
        sock.sendall(b"POST /publish?topic=nohost HTTP/1.0\r\nOrigin: http://x.example\r\n"
                     b"Content-Length: 1\r\n\r\nx")
        data = recv_until(sock, b"}")
    assert data.startswith(b"HTTP/1.0 403") or data.startswith(b"HTTP/1.1 403")
    assert time.monotonic() - started < 1.0
