"""The Locust users' connections: byte-counting gevent sockets, HTTP requests, WebSocket.

Split from the locustfile (which keeps the users, phases and records): this is
only the wire. WebSocket (RFC 6455: handshake, masking, pings, close) is the
``websockets`` sans-I/O ``ClientProtocol``'s job, not hand-rolled framing; this
module moves its bytes over a gevent socket, so every byte is still counted at
the socket like the native engine's.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from geventhttpclient.response import HTTPSocketResponse
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from duplexbench.contract.http import PATH_WS

__all__ = ["ClientFailure", "Conn", "WSConn", "Wire"]

#: Larger than any payload the servers accept (1 MiB) plus its envelope.
MAX_MESSAGE = 4 << 20


class ClientFailure(Exception):
    """A failure shown in Locust's failure table (lost messages, bad responses)."""


class Wire:
    """Socket counters of one role, summed over this process's connections."""

    __slots__ = ("bytes_up", "bytes_down", "http_requests", "connections", "reconnects", "errors")

    def __init__(self) -> None:
        self.bytes_up = self.bytes_down = self.http_requests = 0
        self.connections = self.reconnects = self.errors = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Conn:
    """One TCP connection; every byte in and out is added to a role's counters."""

    def __init__(self, url: str, wire: Wire, timeout: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.authority = f"{self.host}:{self.port}"
        self.wire = wire
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        # Nagle + delayed ACK would add tens of ms to small messages (MEASUREMENT.md).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire.connections += 1
        self.closed = False

    def sendall(self, data: bytes) -> None:
        self.wire.bytes_up += len(data)
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.wire.bytes_down += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def send_request(self, method: str, target: str, headers: dict[str, str] | None = None,
                     body: bytes = b"") -> None:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.wire.http_requests += 1
        self.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def request(self, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes = b"") -> HTTPSocketResponse:
        self.send_request(method, target, headers, body)
        return HTTPSocketResponse(self, method=method)


class WSConn:
    """A WebSocket on a :class:`Conn`: ``websockets``' ClientProtocol does RFC 6455."""

    def __init__(self, url: str, query: str, wire: Wire, timeout: float) -> None:
        self.conn = Conn(url, wire, timeout)
        self.protocol = ClientProtocol(parse_uri(f"ws://{self.conn.authority}{PATH_WS}{query}"),
                                       max_size=MAX_MESSAGE)
        self.protocol.send_request(self.protocol.connect())
        wire.http_requests += 1  # the upgrade request
        self._flush()
        self._early: list[bytes] = []  # text frames that came with the 101
        while self.protocol.state is State.CONNECTING:
            data = self.conn.recv(65536)
            if not data:
                self.conn.close()
                raise ClientFailure("connection closed during the WebSocket handshake")
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if isinstance(event, Response) and self.protocol.handshake_exc is not None:
                    self.conn.close()
                    raise ClientFailure(f"WebSocket upgrade refused ({event.status_code}): "
                                        f"{self.protocol.handshake_exc}")
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    self._early.append(event.data)
        self._flush()

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def send_text(self, payload: bytes) -> None:
        self.protocol.send_text(payload)
        self._flush()

    def messages(self):
        """Text frame payloads until the connection closes; pings are answered
        (the protocol queues the pong; the server closes sockets that do not pong)."""
        yield from self._early
        self._early = []
        protocol = self.protocol
        while True:
            data = self.conn.recv(65536)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for event in protocol.events_received():
                if event.opcode is Opcode.TEXT:
                    yield event.data
            self._flush()
            if not data or protocol.state is State.CLOSED or protocol.close_expected():
                return

    def close(self) -> None:
        self.conn.close()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                try:
                    self.conn.sendall(data)
                except OSError:
                    pass
