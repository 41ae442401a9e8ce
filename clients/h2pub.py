"""The publisher process's HTTP/2 mode: every POST /publish a stream of one connection.

Why a mode of its own: over HTTP/1.1 the publisher keeps ``publish_pool``
keep-alive connections, one POST in flight on each; over HTTP/2 a client
(a browser page, an app's backend) sends them all on one connection,
``publish_pool`` streams in flight at once (bounded by the server's
SETTINGS_MAX_CONCURRENT_STREAMS), and HPACK shrinks every POST's headers to
a few bytes after the first. :class:`H2Publisher` is clients.pubproc's
``Publisher`` with that connection: the same schedule, sleeps, answers and
TCP_INFO window (its socket is in the same tally); framing, HPACK and flow
control are the ``h2`` library's. TLS must select ``h2`` by ALPN (the
LoadSpec's context offers only it); cleartext is h2c with prior knowledge.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import time

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import H2Error

from duplexbench.contract.http import PATH_PUBLISH

from .publoop import Publisher

__all__ = ["H2Publisher"]

_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
CONNECT_TIMEOUT_S = 10.0


class _Conn:
    """The one HTTP/2 connection (a non-blocking socket and its h2 state)."""

    def __init__(self, sock, h2: H2Connection) -> None:
        self.sock = sock
        self.h2 = h2
        self.out = b""  # bytes not yet accepted by the kernel
        #: stream id -> [publish index, status, body]
        self.streams: dict[int, list] = {}


class H2Publisher(Publisher):
    """``Publisher`` over one HTTP/2 connection (see the module docstring)."""

    def connect(self) -> None:
        self._open(CONNECT_TIMEOUT_S)

    def _open(self, timeout: float) -> None:
        e = self.endpoint
        sock = socket.create_connection((e.host, e.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = self.spec.ssl_context()
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname=e.host)
            if sock.selected_alpn_protocol() != "h2":
                sock.close()
                raise OSError(f"{e.authority} did not select HTTP/2 by ALPN (selected "
                              f"{sock.selected_alpn_protocol() or 'nothing'})")
        h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        h2.initiate_connection()
        sock.sendall(h2.data_to_send())
        # The server's SETTINGS first: they bound the streams in flight.
        deadline = time.monotonic() + timeout
        settings = False
        while not settings:
            if time.monotonic() > deadline:
                raise OSError(f"{e.authority} sent no HTTP/2 SETTINGS (not an HTTP/2 server?)")
            data = sock.recv(65536)
            if not data:
                raise OSError(f"{e.authority} closed the connection during the HTTP/2 preface")
            settings = any(isinstance(ev, RemoteSettingsChanged) for ev in h2.receive_data(data))
        sock.sendall(h2.data_to_send())  # the SETTINGS ack
        sock.setblocking(False)
        self.tcp.add(sock)
        self.conn = _Conn(sock, h2)
        self.conns = [self.conn]
        self.authority = e.authority.encode()
        self.scheme = b"https" if ctx is not None else b"http"
        self.topic_paths = [b"%s?topic=%s&ts=" % (PATH_PUBLISH.encode(), t.encode())
                            for t in self.plan.topics]

    @property
    def _room(self) -> int:
        """Streams that may be opened now: the pool, within the server's limit."""
        limit = min(self.spec.publish_pool, self.conn.h2.remote_settings.max_concurrent_streams)
        return limit - self.in_flight

    # Sending

    def send(self, i: int) -> None:
        if not self.conns:
            try:  # the connection was lost (e.g. a server restart): open another
                self._open(1.0)
            except OSError as exc:
                self.sent += 1  # attempted: counted as publish_failed, not as lost
                self.error(f"publish {i} not sent: {exc}")
                return
        if self._room <= 0:
            self.waiting.append(i)
            return
        self._post(i)

    def _post(self, i: int) -> None:
        conn = self.conn
        ts = time.monotonic_ns()
        body = self.payloads[i]
        headers = [(b":method", b"POST"), (b":scheme", self.scheme),
                   (b":authority", self.authority),
                   (b":path", b"%s%d" % (self.topic_paths[self.topic_of[i]], ts)),
                   (b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", b"%d" % len(body))]
        self.sent += 1
        self.sent_ns[i] = ts
        try:
            sid = conn.h2.get_next_available_stream_id()
            conn.h2.send_headers(sid, headers)
            # Payloads are at most 1 MiB; the server's window (64 KiB at first) may hold
            # part of one back: the rest goes when WINDOW_UPDATE arrives (_drain_bodies).
            room = max(0, conn.h2.local_flow_control_window(sid))
            if room:
                conn.h2.send_data(sid, body[:room], end_stream=len(body) <= room)
        except H2Error as exc:
            self.error(f"POST {i} not sent: {exc}")
            return
        conn.streams[sid] = [i, 0, b"", body[room:]]
        self.in_flight += 1
        self._flush()

    def _flush(self) -> None:
        conn = self.conn
        conn.out += conn.h2.data_to_send()
        if not conn.out:
            return
        try:
            n = conn.sock.send(conn.out)
            conn.out = conn.out[n:]
        except _WOULD_BLOCK:
            pass
        except OSError as exc:
            self._lost(f"publisher connection failed: {exc}")

    def _drain_bodies(self) -> None:
        """Bodies held back by flow control: as much as the windows now allow."""
        h2 = self.conn.h2
        for sid, entry in self.conn.streams.items():
            rest = entry[3]
            if rest:
                room = min(h2.local_flow_control_window(sid), len(rest))
                if room > 0:
                    h2.send_data(sid, rest[:room], end_stream=room == len(rest))
                    entry[3] = rest[room:]

    # Receiving

    def _receive(self) -> None:
        conn = self.conn
        try:
            data = conn.sock.recv(65536)
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._lost(f"publisher connection: {exc}")
            return
        if not data:
            self._lost("the server closed the publisher connection")
            return
        try:
            events = conn.h2.receive_data(data)
        except H2Error as exc:
            self._lost(f"HTTP/2 protocol error: {exc}")
            return
        for ev in events:
            entry = conn.streams.get(getattr(ev, "stream_id", 0) or 0)
            if isinstance(ev, ResponseReceived) and entry:
                entry[1] = int(dict(ev.headers).get(b":status", b"0"))
            elif isinstance(ev, DataReceived):
                conn.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if entry:
                    entry[2] += ev.data
            elif isinstance(ev, StreamEnded) and entry:
                del conn.streams[ev.stream_id]
                self._answered(entry[0], entry[1], entry[2])
            elif isinstance(ev, StreamReset) and entry:
                del conn.streams[ev.stream_id]
                self.in_flight -= 1
                self.error(f"POST {entry[0]}: stream reset by the server (error {ev.error_code})")
            elif isinstance(ev, ConnectionTerminated):
                self._lost(f"the server sent GOAWAY (error {ev.error_code})")
                return
        self._drain_bodies()
        self._flush()

    def _answered(self, i: int, status: int, body: bytes) -> None:
        self.in_flight -= 1
        if status == 200:
            try:
                self.seq[i] = json.loads(body)["seq"]
                self.ok[i] = True
            except (ValueError, KeyError, TypeError):
                self.error(f"POST {i}: bad answer {body[:100]!r}")
        else:
            self.error(f"POST {i} answered {status}: {body[:200]!r}")
        while self.waiting and self._room > 0:
            self._post(self.waiting.popleft())

    def _lost(self, message: str) -> None:
        """The connection is gone: what was in flight failed; the next send reconnects."""
        conn = self.conn
        self.error(message)
        self.in_flight -= len(conn.streams)
        conn.streams.clear()
        self.tcp.retire(conn.sock)
        conn.sock.close()
        self.conns = []

    # Waiting (the Publisher's loops call these)

    def pump(self, timeout: float) -> None:
        if not self.conns:
            time.sleep(max(0.0, min(timeout, 0.01)))
            return
        sock = self.conn.sock
        readable, writable, _ = select.select([sock], [sock] if self.conn.out else [], [],
                                              max(0.0, timeout))
        if writable:
            self._flush()
        if readable and self.conns:
            self._receive()

    def collect(self) -> None:
        if self.conns and (self.in_flight or self.conn.out):
            self._receive()
            if self.conns and self.conn.out:
                self._flush()
