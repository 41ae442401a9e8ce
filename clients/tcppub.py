"""A publish-only plain-TCP connection (``"subscribe":false``) over a blocking socket.

For the publisher process (clients.pubproc), as clients.wspub is for WebSocket:
the subscribe line, the server's hello line, then a publish line per message,
sent without blocking. The server sends nothing else on such a connection but
an error line before it closes, so :meth:`receive` only has to notice the end.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.request

from duplexbench.contract import ContractError
from duplexbench.contract.tcp import Hello, decode_line, encode_publish_line, encode_subscribe

__all__ = ["BlockingTCPPublisher", "healthz_tcp_port"]

TIMEOUT_S = 10.0


def healthz_tcp_port(base_url: str, ssl_context=None) -> int:
    """The plain-TCP listener's port, from ``GET /healthz`` (blocking)."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/healthz", timeout=TIMEOUT_S,
                                    context=ssl_context) as response:
            port = json.loads(response.read()).get("tcp_port")
    except (OSError, ValueError, AttributeError) as exc:
        raise OSError(f"GET {base_url}/healthz (for tcp_port): {exc}") from None
    if not isinstance(port, int) or not 0 < port < 65536:
        raise OSError(f"{base_url}/healthz names no tcp_port (is the tcp transport mounted?)")
    return port


class BlockingTCPPublisher:
    def __init__(self, addr: tuple[str, int], topic: str, tcp, ssl_context=None) -> None:
        self.sock = socket.create_connection(addr, timeout=TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=addr[0])
        tcp.add(self.sock)
        self.closed = False
        self.sock.sendall(encode_subscribe(topic, subscribe=False))
        data, deadline = b"", time.monotonic() + TIMEOUT_S
        while b"\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk or time.monotonic() > deadline:
                raise OSError(f"TCP publisher for {topic}: no hello line (got {data[:200]!r})")
            data += chunk
        line = data.split(b"\n", 1)[0]
        try:
            hello = decode_line(line)
        except ContractError:
            hello = None
        if not isinstance(hello, Hello):
            raise OSError(f"TCP publisher for {topic}: the server answered {line[:200]!r}")
        self.sock.setblocking(False)

    def send(self, payload: bytes, ts: int) -> None:
        if self.closed:
            raise OSError("the server closed the TCP publisher connection")
        self.sock.sendall(encode_publish_line(payload.decode(), ts))

    def receive(self) -> None:
        """Something to read: an error line and the end, or just the end."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        if not data or b'"error"' in data:
            self.closed = True
            raise OSError(f"the server ended the TCP publisher connection: {data[:200]!r}")
