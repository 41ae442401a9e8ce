"""Helpers for the server tests: plain clients (urllib, raw sockets) and /metrics reading.

Deliberately not duplexbench's own clients: the servers are checked with code
that shares nothing with them but the contract.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request

from _timeouts import scaled

__all__ = [
    "http",
    "metric",
    "wait_metric",
    "publish",
    "raw_connect",
    "recv_until",
    "ws_handshake",
]


def http(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
         timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """(status, headers, body) without raising on 4xx/5xx."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=scaled(timeout)) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def publish(base: str, topic: str, data: str, ts: int | None = None) -> int:
    query = {"topic": topic} | ({"ts": str(ts)} if ts is not None else {})
    status, _, body = http(f"{base}/publish?{urllib.parse.urlencode(query)}", "POST", data.encode())
    assert status == 200, body
    return json.loads(body)["seq"]


def metric(base: str, name: str, transport: str | None = None) -> float:
    _, _, body = http(base + "/metrics")
    label = f'{{transport="{transport}"}}' if transport else ""
    match = re.search(rf"^duplexbench_{name}{re.escape(label)} (\S+)$", body.decode(), re.M)
    assert match, f"no {name}{label} in /metrics"
    return float(match.group(1))


def wait_metric(base: str, name: str, transport: str | None, value: float, timeout: float = 5.0) -> None:
    """Wait until the server reports ``value`` (e.g. a poll is being held), or fail."""
    import time

    deadline = time.monotonic() + scaled(timeout)
    while (current := metric(base, name, transport)) != value:
        assert time.monotonic() < deadline, f"{name}{{{transport}}} stayed {current}, expected {value}"
        time.sleep(0.02)


def raw_connect(base: str, timeout: float = 5.0) -> socket.socket:
    host, port = urllib.parse.urlsplit(base).netloc.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=scaled(timeout))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        assert len(data) < limit
    return data


def ws_handshake(base: str, path: str, key: str | None = None, extra: str = "") -> tuple[socket.socket, bytes, bytes]:
    """Raw upgrade: (socket, response head, bytes already read after the head)."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    sock = raw_connect(base)
    host = urllib.parse.urlsplit(base).netloc
    sock.sendall(
        (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()
    )
    data = recv_until(sock, b"\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    return sock, head, rest
