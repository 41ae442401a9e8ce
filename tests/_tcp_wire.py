"""Raw-socket helpers for the plain-TCP transport's tests (no duplexbench client code).

At tests/ level (like _timeouts.py): the aiohttp servers' tests and the Node reference's use it.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request

from _timeouts import scaled

__all__ = ["LineReader", "tcp_connect", "tcp_port"]


def tcp_port(base: str) -> int:
    """The plain-TCP listener's port, as /healthz names it."""
    with urllib.request.urlopen(base + "/healthz", timeout=scaled(5)) as response:
        port = json.loads(response.read())["tcp_port"]
    assert isinstance(port, int) and port > 0, port
    return port


def tcp_connect(base: str, first: bytes | None = None, rcvbuf: int = 0) -> socket.socket:
    """A socket to the TCP listener of the server at ``base``; ``first`` is sent at once."""
    host = urllib.parse.urlsplit(base).hostname
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(scaled(5))
    sock.connect((host, tcp_port(base)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if first is not None:
        sock.sendall(first)
    return sock


class LineReader:
    """Lines (with their ``\\n``, blank ones included) from a socket, and the raw bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.raw = b""

    def line(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + scaled(timeout)
        while b"\n" not in self.buffer:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(1 << 16)
            assert chunk, f"connection closed; pending {self.buffer[:200]!r}"
            self.buffer += chunk
            self.raw += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def lines(self, count: int, skip_blank: bool = True) -> list[bytes]:
        out: list[bytes] = []
        while len(out) < count:
            line = self.line()
            if line != b"\n" or not skip_blank:
                out.append(line)
        return out

    def until_closed(self, timeout: float = 5.0) -> bytes:
        """Everything until EOF (or a reset), the pending bytes included."""
        deadline = time.monotonic() + scaled(timeout)
        data = self.buffer
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        else:
            raise AssertionError(f"the server never closed; got {data[-200:]!r}")
        self.buffer = b""
        return data

    def nothing_for(self, seconds: float) -> bool:
        """True when no byte but heartbeats comes within ``seconds``."""
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(1 << 16)
        except (socket.timeout, TimeoutError):
            return True
        self.buffer += chunk
        return bool(chunk) and not chunk.strip(b"\n")
