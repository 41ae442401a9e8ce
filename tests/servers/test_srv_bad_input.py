"""Every bad input gets a 4xx with a reason; a well-behaved client is served during and after."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import struct
import time

import pytest
from _srv_helpers import http, publish, raw_connect, recv_until, wait_metric

from duplexbench.procs.server import ServerProcess

_topics = itertools.count()


@pytest.fixture(scope="module")
def srv():
    args = ["--max-payload", "1000", "--retention", "5"]
    with ServerProcess("all", args=args) as server:
        for i in range(8):  # topic "old": seqs 1-8, only 4-8 retained
            publish(server.url, "old", f"m{i}")
        yield server


@contextlib.contextmanager
def well_behaved_client(base: str):
    """An NDJSON subscriber open across the bad input; it must get a message published
    after it, and a fresh client must be served afterwards."""
    topic = f"good{next(_topics)}"
    sock = raw_connect(base)
    sock.sendall(f"GET /stream?topic={topic} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 200")
    try:
        yield
        seq = publish(base, topic, "still here")  # during: the open stream is served
        data = recv_until(sock, b'"still here"')
        assert b'"data":"still here"' in data
        status, _, body = http(f"{base}/poll?topic={topic}&cursor={seq - 1}")  # after
        assert status == 200 and json.loads(body)[0]["data"] == "still here"
    finally:
        sock.close()


BAD_REQUESTS = [
    # (method, path, body, headers, status, words in the reason)
    ("GET", "/poll?topic=t&cursor=abc", None, {}, 400, "cursor"),
    ("GET", "/poll?topic=t&cursor=-1", None, {}, 400, "cursor"),
    ("GET", "/poll?topic=t&cursor=1.5", None, {}, 400, "cursor"),
    ("GET", "/poll?topic=old&cursor=99", None, {}, 400, "ahead"),
    ("GET", "/poll?topic=t&timeout=-1", None, {}, 400, "timeout"),
    ("GET", "/poll?topic=t&timeout=nan", None, {}, 400, "timeout"),
    ("GET", "/poll?topic=t&max=0", None, {}, 400, "max"),
    ("GET", "/poll?topic=t&cursor=ABC-1", None, {}, 400, "cursor"),
    ("GET", "/poll?topic=old&cursor=old-99", None, {}, 410, "another server instance"),
    ("POST", "/publish?topic=t&ts=9223372036854775808", b"x", {}, 400, "ts"),
    ("GET", "/poll?cursor=0", None, {}, 400, "topic"),
    ("GET", "/poll?topic=a%20b", None, {}, 400, "topic"),
    ("GET", "/poll?topic=" + "x" * 65, None, {}, 400, "topic"),
    ("GET", "/stream?topic=t&cursor=x", None, {}, 400, "cursor"),
    ("GET", "/stream?topic=a/b", None, {"Accept": "text/event-stream"}, 400, "topic"),
    ("GET", "/stream?topic=t", None, {"Accept": "text/event-stream", "Last-Event-ID": "abc"}, 400, "Last-Event-ID"),
    ("GET", "/ws?topic=t&cursor=-5", None, {}, 400, "cursor"),
    ("GET", "/ws?topic=t&subscribe=2", None, {}, 400, "subscribe"),
    ("POST", "/publish?topic=t", b"x" * 1001, {}, 413, "max-payload"),
    ("POST", "/publish?topic=t", b"\xff\xfe", {}, 400, "UTF-8"),
    ("POST", "/publish?topic=t&ts=soon", b"x", {}, 400, "ts"),
    ("POST", "/publish?topic=", b"x", {}, 400, "topic"),
    ("PUT", "/poll?topic=t", b"", {}, 405, "not allowed"),
    ("GET", "/publish?topic=t", None, {}, 405, "not allowed"),
    ("DELETE", "/ws?topic=t", None, {}, 405, "not allowed"),
    ("HEAD", "/stream?topic=t", None, {}, 405, None),
    ("GET", "/nowhere", None, {}, 404, "no such path"),
]


@pytest.mark.parametrize("method,path,body,headers,status,words", BAD_REQUESTS,
                         ids=[f"{r[0]} {r[1][:40]} {r[4]}" for r in BAD_REQUESTS])
def test_bad_request(srv, method, path, body, headers, status, words):
    with well_behaved_client(srv.url):
        got, response_headers, response_body = http(srv.url + path, method, body, headers)
        assert got == status, response_body
        if words is not None:
            assert words in json.loads(response_body)["error"]


@pytest.mark.parametrize("path", ["/poll?topic=old&cursor=1", "/stream?topic=old&cursor=2",
                                  "/ws?topic=old&cursor=1"])
def test_cursor_older_than_retention_is_410(srv, path):
    with well_behaved_client(srv.url):
        headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="} if path.startswith("/ws") else {}
        status, _, body = http(srv.url + path, headers=headers)
        assert status == 410
        answer = json.loads(body)
        assert answer["oldest_seq"] == 4
        assert answer["cursor"] == f"{answer['epoch']}-3"  # where the client may resume
    # Cursor 0 means "from the oldest retained": never 410.
    status, _, body = http(srv.url + "/poll?topic=old&cursor=0")
    assert status == 200 and [e["seq"] for e in json.loads(body)] == [4, 5, 6, 7, 8]
    # The oldest retained cursor still works: exactly the retained messages.
    status, _, body = http(srv.url + "/poll?topic=old&cursor=3")
    assert status == 200 and [e["seq"] for e in json.loads(body)] == [4, 5, 6, 7, 8]


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\xff\x16\x03\x01garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"NOT A REQUEST\r\n\r\n",
     b"GET /poll?topic=t HTTP/1.1\r\nBad Header Line\r\n\r\n",
     b"POST /publish?topic=t HTTP/1.1\r\nContent-Length: -3\r\n\r\n"],
)
def test_garbage_bytes_get_400(srv, garbage):
    with well_behaved_client(srv.url):
        sock = raw_connect(srv.url)
        with sock:
            sock.sendall(garbage)
            response = recv_until(sock, b"\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", response), response[:200]


def test_stalled_half_request_does_not_block_others(srv):
    stalled = raw_connect(srv.url)
    try:
        stalled.sendall(b"POST /publish?topic=t HTTP/1.1\r\nContent-Length: 100\r\n\r\nhalf")
        with well_behaved_client(srv.url):
            time.sleep(0.2)
    finally:
        stalled.close()


def test_abrupt_disconnects_release_everything(srv):
    """Clients that vanish (TCP RST) mid-stream, mid-poll, mid-WebSocket leave nothing open."""
    requests = [
        b"GET /stream?topic=rst HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /stream?topic=rst HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
        b"GET /poll?topic=rst&timeout=30 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /ws?topic=rst HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ]
    with well_behaved_client(srv.url):
        socks = []
        for request in requests:
            sock = raw_connect(srv.url)
            sock.sendall(request)
            socks.append(sock)
        for label in ("ndjson", "sse", "longpoll", "websocket"):
            wait_metric(srv.url, "connections_open", label, 1 if label != "ndjson" else 2)
        for sock in socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST, no goodbye
        publish(srv.url, "rst", "after")
        for label in ("sse", "longpoll", "websocket"):
            wait_metric(srv.url, "connections_open", label, 0)
        wait_metric(srv.url, "connections_open", "ndjson", 1)  # the well-behaved client


def test_no_500_and_server_alive(srv):
    assert http(srv.url + "/healthz")[0] == 200
    assert srv.process.poll() is None
    assert not [line for line in srv.output if "Traceback" in line or "ERROR" in line], list(srv.output)
