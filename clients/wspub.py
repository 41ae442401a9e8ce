"""A publish-only WebSocket (``?subscribe=0``) over a plain blocking socket.

For the publisher process (clients.pubproc): RFC 6455 (handshake, masking,
pings, close) is the ``websockets`` sans-I/O ClientProtocol's job; this class
only moves its bytes. Sends are non-blocking after the handshake; incoming
frames (pings, a close) are read when ``select`` says so.
"""

from __future__ import annotations

import socket
import ssl
import time

from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from duplexbench.contract.http import PATH_WS
from duplexbench.contract.websocket import encode_publish

__all__ = ["BlockingWSPublisher"]


class BlockingWSPublisher:
    def __init__(self, addr: tuple[str, int], authority: str, topic: str, tcp,
                 ssl_context=None) -> None:
        scheme = "wss" if ssl_context is not None else "ws"
        self.protocol = ClientProtocol(parse_uri(f"{scheme}://{authority}{PATH_WS}?topic={topic}&subscribe=0"))
        self.sock = socket.create_connection(addr, timeout=10.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=addr[0])
        tcp.add(self.sock)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        deadline = time.monotonic() + 10.0
        while self.protocol.handshake_exc is None and not self._opened():
            data = self.sock.recv(65536)
            if not data or time.monotonic() > deadline:
                raise OSError(f"WebSocket handshake for {topic} failed")
            self.protocol.receive_data(data)
            self.protocol.events_received()
        if self.protocol.handshake_exc is not None:
            raise OSError(f"WebSocket handshake for {topic}: {self.protocol.handshake_exc}")
        self.sock.setblocking(False)

    def _opened(self) -> bool:
        return self.protocol.state.name == "OPEN"

    def send(self, payload: bytes, ts: int) -> None:
        self.protocol.send_text(encode_publish(payload.decode(), ts).encode())
        self._flush()

    def receive(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self.protocol.events_received()  # pings are answered in data_to_send
        self._flush()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)
