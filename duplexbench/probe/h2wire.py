"""An HTTP/2 client for the probe: what the server sends, frame by frame, nothing hidden.

The h2 rules must see what an HTTP/2 server really answers (the ALPN protocol
it selected, its SETTINGS, the exact header fields of a response, when each
DATA frame arrives), and must be able to report a connection-specific header
instead of dying on it, so inbound headers are not validated here (the
load generator's client, clients.h2conn, does validate). Framing, HPACK and
flow control are the ``h2`` library's; this is a thin asyncio-streams shell:
TLS with ALPN or cleartext with prior knowledge, streams opened by the rule,
events routed to per-stream buffers.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (ConnectionTerminated, DataReceived, RemoteSettingsChanged,
                       ResponseReceived, StreamEnded, StreamReset)
from h2.exceptions import H2Error
from h2.settings import SettingCodes

from .wire import Target, WireError

__all__ = ["CONNECTION_SPECIFIC", "H2Conn", "H2Stream", "alpn_context"]

#: Header fields HTTP/2 forbids (RFC 9113 8.2.2): they describe an HTTP/1.1 connection.
CONNECTION_SPECIFIC = ("connection", "keep-alive", "proxy-connection", "transfer-encoding",
                       "upgrade")


def alpn_context(ca_file: str, protocols: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file or None)
    context.set_alpn_protocols(protocols)
    return context


@dataclass
class H2Stream:
    id: int
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    ended: bool = False
    reset: int | None = None
    taken: int = 0  # body bytes a reader has consumed (WebSocket frames)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def connection_specific(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.headers if k in CONNECTION_SPECIFIC]


class H2Conn:
    """One HTTP/2 connection: ``await H2Conn.open(target, ca_file)``, then ``request()``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 target: Target, alpn: str) -> None:
        self.reader, self.writer, self.target = reader, writer, target
        self.alpn = alpn  # what TLS selected ("" on cleartext)
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None,
                                               validate_inbound_headers=False))
        self.streams: dict[int, H2Stream] = {}
        self.settings = asyncio.Event()
        self.closed: str = ""  # why the connection ended ("" while open)
        self._reader_task: asyncio.Task | None = None

    @classmethod
    async def open(cls, target: Target, ca_file: str = "", *, tls: bool | None = None,
                   protocols: tuple[str, ...] = ("h2",)) -> "H2Conn":
        """TLS (an https target, or ``tls``) offering ``protocols`` by ALPN, else h2c
        prior knowledge. Raises WireError when TLS selects anything but h2."""
        use_tls = target.scheme == "https" if tls is None else tls
        context = alpn_context(ca_file, list(protocols)) if use_tls else None
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=context,
            server_hostname=target.host if context else None)
        alpn = ""
        if context is not None:
            alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol() or ""
            if alpn != "h2":
                writer.close()
                raise WireError(f"ALPN selected {alpn or 'nothing'}, not h2")
        conn = cls(reader, writer, target, alpn)
        conn.h2.initiate_connection()
        conn._flush()
        conn._reader_task = asyncio.get_running_loop().create_task(conn._read())
        try:
            await asyncio.wait_for(conn.settings.wait(), 2.0)
        except (TimeoutError, asyncio.TimeoutError):
            conn.close()
            raise WireError("no HTTP/2 SETTINGS from the server within 2 s "
                            "(the connection preface was not understood)") from None
        return conn

    @property
    def connect_protocol(self) -> bool:
        return bool(self.h2.remote_settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0))

    def request(self, method: str, path: str, headers: list[tuple[str, str]] = (),
                body: bytes = b"", *, end_stream: bool = True, protocol: str = "") -> H2Stream:
        """Open a stream now (HEADERS, and DATA with a body); WireError when h2 cannot."""
        sid = self.h2.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", self.target.scheme),
                  (":authority", self.target.authority), (":path", path)]
        if protocol:
            fields.append((":protocol", protocol))
        if body:
            fields.append(("content-length", str(len(body))))
        try:
            self.h2.send_headers(sid, [(k.encode(), v.encode()) for k, v in fields + list(headers)],
                                 end_stream=end_stream and not body)
            if body:
                self.h2.send_data(sid, body, end_stream=end_stream)
        except H2Error as exc:  # e.g. more streams than the server's MAX_CONCURRENT_STREAMS
            raise WireError(f"cannot open stream {sid} ({method} {path}): "
                            f"{type(exc).__name__} {exc}") from None
        stream = self.streams[sid] = H2Stream(sid)
        self._flush()
        return stream

    def send_data(self, stream: H2Stream, data: bytes, end_stream: bool = False) -> None:
        self.h2.send_data(stream.id, data, end_stream=end_stream)
        self._flush()

    async def head(self, stream: H2Stream) -> H2Stream:
        while not stream.status and not stream.ended:
            await self._wait(stream)
        if not stream.status:
            raise WireError(f"stream {stream.id} ended without a response"
                            + (f" (reset, error {stream.reset})" if stream.reset is not None else ""))
        return stream

    async def until(self, stream: H2Stream, marker: bytes) -> bytes:
        """The body so far, once it holds ``marker`` (WireError if the stream ends first)."""
        while marker not in stream.body:
            if stream.ended:
                raise WireError(f"stream ended before {marker!r} (got {stream.body[:120]!r})")
            await self._wait(stream)
        return stream.body

    async def done(self, stream: H2Stream) -> H2Stream:
        while not stream.ended:
            await self._wait(stream)
        return stream

    async def _wait(self, stream: H2Stream) -> None:
        if self.closed and not stream.ended:
            raise WireError(f"connection ended: {self.closed}")
        # Wait, then clear: a set that came before the wait began (a wake-up for data the
        # caller has already looked at) only costs one more look; clearing first could lose one.
        await stream.event.wait()
        stream.event.clear()

    def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        try:
            self.writer.transport.abort()
        except Exception:  # already closed
            pass

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    self._end_all("closed by the server")
                    return
                try:
                    events = self.h2.receive_data(data)
                except H2Error as exc:
                    self._end_all(f"HTTP/2 protocol error: {exc}")
                    return
                for ev in events:
                    self._on_event(ev)
                self._flush()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            self._end_all(f"{type(exc).__name__}: {exc}")

    def _on_event(self, ev) -> None:
        if isinstance(ev, RemoteSettingsChanged):
            self.settings.set()
            return
        if isinstance(ev, ConnectionTerminated):
            self._end_all(f"GOAWAY (error {ev.error_code})")
            return
        stream = self.streams.get(getattr(ev, "stream_id", None) or 0)
        if stream is None:
            return
        if isinstance(ev, ResponseReceived):
            for k, v in ev.headers:
                k, v = k.decode("latin-1"), v.decode("latin-1")
                if k == ":status":
                    stream.status = int(v)
                elif not k.startswith(":"):
                    stream.headers.append((k, v))
        elif isinstance(ev, DataReceived):
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            stream.body += ev.data
        elif isinstance(ev, StreamEnded):
            stream.ended = True
        elif isinstance(ev, StreamReset):
            stream.ended, stream.reset = True, ev.error_code
        stream.event.set()

    def _end_all(self, why: str) -> None:
        self.closed = why
        for stream in self.streams.values():
            stream.ended = True
            stream.event.set()
