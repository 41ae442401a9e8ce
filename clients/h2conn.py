"""An HTTP/2 client connection that counts every byte at the socket: many streams, one TCP.

Why: HTTP/2 changes what the transports cost on the wire (HPACK makes a long
poll's repeated headers a few bytes, every stream of a page shares one
connection, WebSocket rides a stream: RFC 8441), so the load generator must
speak it itself, with the same discipline as :mod:`clients.http11`: an
``asyncio.Protocol`` that sees each ``write`` and ``data_received`` (exact
counts, checked against the kernel's TCP_INFO in the tests), all of RFC 9113
(framing, HPACK, flow control, SETTINGS) left to the ``h2`` library's sans-I/O
``H2Connection``. TLS negotiates ``h2`` by ALPN (:func:`h2_ssl_context`);
cleartext is h2c with prior knowledge (RFC 9113 3.3: the preface straight away).

Flow control is never what is measured: the client announces a 16 MiB window
(stream and connection) and hands every DATA frame back to ``h2`` as soon as
it is read, which sends WINDOW_UPDATE once half a window is consumed.

GOAWAY is graceful here (RFC 9113 6.8), which ``h2`` does not do: the
connection takes GOAWAY frames out of the bytes before ``h2`` sees them
(clients.h2goaway) and acts on them itself: no new streams, streams above the
last id fail (the server never saw them), the others finish, then it closes.

:class:`H2ClientConnection` is the connection (streams as :class:`H2Stream`);
clients.h2sub's ``H2Channel`` is one subscriber's view of it with the interface of
``HTTP11Connection``, so the HTTP/1.1 subscribers' loops run over HTTP/2 unchanged.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from collections.abc import Callable

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings

from duplexbench.tcp import set_nodelay

from .base import ClientError, Endpoint, WireStats
from .h2goaway import GoawayHold
from .http11 import ConnectionLost, Response

__all__ = ["ALPN_H2", "H2ClientConnection", "H2Stream", "NoRFC8441", "h2_ssl_context"]

ALPN_H2 = "h2"
#: The receive window announced for every stream and for the connection (bytes).
WINDOW = 1 << 24
OnData = Callable[[bytes], None]


class NoRFC8441(ClientError):
    """The server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL: no WebSocket over h2."""


def h2_ssl_context(ca_file: str = "", context: ssl_module.SSLContext | None = None
                   ) -> ssl_module.SSLContext:
    """A client TLS context offering only ``h2`` by ALPN (verifying against ``ca_file``)."""
    context = context or ssl_module.create_default_context(cafile=ca_file or None)
    context.set_alpn_protocols([ALPN_H2])
    return context


class H2Stream:
    """One request/response exchange (or a WebSocket tunnel) on a connection."""

    __slots__ = ("id", "status", "headers", "on_data", "chunks", "headers_waiter",
                 "done_waiter", "outbox", "end_after", "end_sent", "ended", "gone")

    def __init__(self, stream_id: int, loop: asyncio.AbstractEventLoop,
                 on_data: OnData | None) -> None:
        self.id = stream_id
        self.status = 0
        #: Response header names (lower-case, as HTTP/2 sends them); the last value wins.
        self.headers: dict[str, str] = {}
        self.on_data = on_data  # None: buffer the body in ``chunks``
        self.chunks: list[bytes] = []
        self.headers_waiter = loop.create_future()
        self.done_waiter = loop.create_future()
        self.outbox = b""  # request body bytes waiting for flow-control window
        self.end_after = True  # END_STREAM with the last outbox byte (False: a tunnel)
        self.end_sent = False  # our side is closed (END_STREAM sent)
        self.ended = False  # the server's side is over (END_STREAM, reset or connection lost)
        self.gone = False  # reset (by either side) or the connection was lost


class H2ClientConnection(asyncio.Protocol):
    """``conn = await H2ClientConnection.open(endpoint, stats)``; then ``request()``.

    ``stats``: the byte and connection counts of this connection (a WireStats);
    requests are counted by whoever sends them (``request(..., stats=)``).
    """

    def __init__(self, endpoint: Endpoint, stats: WireStats, tcp=None, tls: bool = False) -> None:
        self.endpoint = endpoint
        self.stats = stats
        self.tcp = tcp
        self.scheme = b"https" if tls else b"http"
        self.authority = endpoint.authority.encode()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.recv_ns = 0
        self.nodelay = False
        #: The ALPN protocol TLS selected ("" for h2c).
        self.alpn = ""
        self._sock = None
        self._streams: dict[int, H2Stream] = {}
        self._settings: asyncio.Future | None = None
        self._lost_exc: ConnectionLost | None = None
        self._hold = GoawayHold()
        self._going_away = False  # a GOAWAY came: close once the remaining streams are done
        config = H2Configuration(client_side=True, header_encoding=None)
        self.h2 = H2Connection(config=config)
        self.h2.local_settings = Settings(client=True, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            SettingCodes.ENABLE_PUSH: 0,
        })

    @classmethod
    async def open(cls, endpoint: Endpoint, stats: WireStats, timeout: float = 10.0, *,
                   tcp=None, local_addr: tuple[str, int] | None = None,
                   ssl: ssl_module.SSLContext | None = None) -> "H2ClientConnection":
        """Connect, send the preface and wait for the server's SETTINGS.

        ``ssl``: a context offering ALPN h2 (:func:`h2_ssl_context`); TLS must select
        ``h2`` or this raises ClientError (no silent HTTP/1.1). None: h2c prior knowledge.
        """
        loop = asyncio.get_running_loop()
        extra = {"ssl": ssl, "server_hostname": endpoint.host} if ssl is not None else {}
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: cls(endpoint, stats, tcp, ssl is not None),
                                       endpoint.host, endpoint.port, local_addr=local_addr,
                                       **extra),
                timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectionLost(
                f"cannot connect to {endpoint.authority}: {exc or type(exc).__name__}") from None
        if ssl is not None and conn.alpn != ALPN_H2:
            raise ClientError(
                f"{endpoint.authority} did not select HTTP/2 by ALPN (selected "
                f"{conn.alpn or 'nothing'}): the server offers no h2 over TLS")
        try:
            await asyncio.wait_for(asyncio.shield(conn._settings), timeout)
        except asyncio.TimeoutError:
            conn.abort()
            raise ConnectionLost(f"{endpoint.authority} sent no HTTP/2 SETTINGS within "
                                 f"{timeout:g} s (not an HTTP/2 server?)") from None
        return conn

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.connections += 1
        self.nodelay = set_nodelay(transport)
        self._settings = asyncio.get_running_loop().create_future()
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.alpn = ssl_object.selected_alpn_protocol() or ""
            if self.alpn != ALPN_H2:  # not HTTP/2: send it no preface; open() says why
                self.closed = True
                transport.abort()
                return
        if self.tcp is not None:
            self._sock = transport.get_extra_info("socket")
            self.tcp.add(self._sock)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.stats.bytes_down += len(data)
        self.recv_ns = time.monotonic_ns()
        hold = self._hold
        try:
            events = self.h2.receive_data(hold.feed(data))
        except H2Error as exc:
            self._flush()  # h2 has queued a GOAWAY saying why
            self._lose(ConnectionLost(f"HTTP/2 protocol error from {self.endpoint.authority}: {exc}"))
            self.close()
            return
        for event in events:
            cls = event.__class__
            if cls is DataReceived:
                stream = self._streams.get(event.stream_id)
                # Acknowledged at once: the window is never what a delivery waits for.
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if stream is not None and event.data:
                    if stream.on_data is not None:
                        stream.on_data(event.data)
                    else:
                        stream.chunks.append(event.data)
            elif cls is ResponseReceived:
                self._on_response(event.stream_id, event.headers)
            elif cls is StreamEnded:
                self._end(event.stream_id, None)
            elif cls is StreamReset:
                self._end(event.stream_id, ConnectionLost(
                    f"stream {event.stream_id} reset by {self.endpoint.authority} "
                    f"({_error_name(event.error_code)})"))
            elif cls is WindowUpdated:
                self._send_outboxes()
            elif cls is RemoteSettingsChanged:
                if self._settings is not None and not self._settings.done():
                    self._settings.set_result(None)
            elif cls is ConnectionTerminated:
                self.closed = True  # GOAWAY: no new streams; those above last_stream_id are gone
                last = event.last_stream_id or 0
                for sid in [s for s in self._streams if s > last]:
                    self._end(sid, ConnectionLost(
                        f"{self.endpoint.authority} sent GOAWAY ({_error_name(event.error_code)})"))
            elif cls is TrailersReceived:
                pass
        while hold.goaways:
            self._goaway(*hold.goaways.pop(0))
        self._flush()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._retire()
        self.closed = True
        self._lose(ConnectionLost(f"connection to {self.endpoint.authority} closed"
                                  + (f": {exc}" if exc else " by the server")))

    # Requests

    @property
    def connect_protocol(self) -> bool:
        """Whether the server accepts RFC 8441 extended CONNECT (its SETTINGS say so)."""
        return bool(self.h2.remote_settings.enable_connect_protocol)

    def request(self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]] = (),
                body: bytes = b"", *, on_data: OnData | None = None, end_stream: bool = True,
                protocol: bytes = b"", stats: WireStats | None = None) -> H2Stream:
        """Open a stream: HEADERS (+ DATA) now. ``end_stream=False`` keeps our side open
        (a WebSocket tunnel); ``protocol``: the ``:protocol`` of an extended CONNECT.
        One request = one header set sent, counted in ``stats`` (default: the connection's)."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionLost(f"connection to {self.endpoint.authority} is closed")
        sid = self.h2.get_next_available_stream_id()
        stream = H2Stream(sid, asyncio.get_running_loop(), on_data)
        head = [(b":method", method), (b":scheme", self.scheme), (b":authority", self.authority),
                (b":path", path)]
        if protocol:
            head.append((b":protocol", protocol))
        self._streams[sid] = stream
        try:
            self.h2.send_headers(sid, head + list(headers), end_stream=end_stream and not body)
        except H2Error as exc:
            del self._streams[sid]
            raise ClientError(f"cannot send {method.decode()} {path[:60]!r}: {exc}") from None
        (stats or self.stats).http_requests += 1
        stream.end_after = end_stream
        stream.end_sent = end_stream and not body
        if body:
            stream.outbox = body
            self._send_outbox(stream)
        self._flush()
        return stream

    def send_data(self, stream: H2Stream, data: bytes, end_stream: bool = False) -> None:
        """More request body on an open stream (a WebSocket frame), as the window allows;
        ``end_stream``: then close our side (END_STREAM)."""
        # (After a GOAWAY the connection takes no new stream, but its open ones go on.)
        if stream.gone or stream.end_sent or self.transport is None or self.transport.is_closing():
            raise ConnectionLost(f"stream {stream.id} to {self.endpoint.authority} is closed")
        stream.outbox += data
        stream.end_after = stream.end_after or end_stream
        try:
            self._send_outbox(stream)
        except H2Error as exc:
            raise ConnectionLost(f"stream {stream.id}: {exc}") from None
        self._flush()

    def reset(self, stream: H2Stream) -> None:
        """Cancel a stream (RST_STREAM CANCEL): a subscriber going away."""
        self._streams.pop(stream.id, None)
        if stream.gone or (self.closed and not self._going_away) \
                or (stream.ended and stream.end_sent):
            self._finish_if_done()
            return  # nothing left open on the wire
        try:
            self.h2.reset_stream(stream.id, ErrorCodes.CANCEL)
        except H2Error:
            pass  # already closed on the wire
        self._flush()
        self._fail_stream(stream, ConnectionLost(f"stream {stream.id} cancelled"))
        self._finish_if_done()

    def open_streams(self) -> int:
        return len(self._streams)

    def close(self) -> None:
        """GOAWAY, then close the socket."""
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.h2.close_connection()
                self._flush()
            except H2Error:
                pass
        self._retire()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the TCP connection at once (tests force disconnects this way)."""
        self._retire()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # Internals

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.stats.bytes_up += len(data)
            self.transport.write(data)

    def _send_outbox(self, stream: H2Stream) -> None:
        """Send as much of the stream's pending body as both windows allow."""
        h2 = self.h2
        while stream.outbox:
            room = min(h2.local_flow_control_window(stream.id), h2.max_outbound_frame_size)
            if room <= 0:
                return  # WindowUpdated resumes it
            piece, stream.outbox = stream.outbox[:room], stream.outbox[room:]
            last = stream.end_after and not stream.outbox
            h2.send_data(stream.id, piece, end_stream=last)
            stream.end_sent = last
        if stream.end_after and not stream.end_sent:
            h2.end_stream(stream.id)
            stream.end_sent = True

    def _send_outboxes(self) -> None:
        for stream in list(self._streams.values()):
            if stream.outbox and not stream.gone:
                try:
                    self._send_outbox(stream)
                except H2Error:
                    pass

    def _on_response(self, sid: int, headers: list[tuple[bytes, bytes]]) -> None:
        stream = self._streams.get(sid)
        if stream is None:
            return
        for name, value in headers:
            if name == b":status":
                stream.status = int(value)
            else:
                stream.headers[name.decode("latin-1")] = value.decode("latin-1")
        if stream.status != 200 and stream.on_data is not None:
            stream.on_data = None  # buffer an error body: the caller wants its message
        if not stream.headers_waiter.done():
            stream.headers_waiter.set_result(None)

    def _goaway(self, last: int, code: int) -> None:
        """GOAWAY (held back from h2): no new streams; those the server never saw fail; the
        others go on; the connection closes when they are done."""
        self.closed = True
        self._going_away = True
        for sid in [s for s in self._streams if s > last]:
            self._end(sid, ConnectionLost(
                f"{self.endpoint.authority} sent GOAWAY ({_error_name(code)}) before stream {sid}"))
        self._finish_if_done()

    def _finish_if_done(self) -> None:
        if self._going_away and not self._streams and self.transport is not None \
                and not self.transport.is_closing():
            self.close()

    def _end(self, sid: int, exc: ConnectionLost | None) -> None:
        stream = self._streams.pop(sid, None)
        if stream is None:
            return
        self._finish_if_done()
        stream.ended = True
        if exc is not None:
            self._fail_stream(stream, exc)
            return
        if not stream.headers_waiter.done():
            stream.headers_waiter.set_result(None)
        if not stream.done_waiter.done():
            body = b"".join(stream.chunks)
            stream.chunks = []
            stream.done_waiter.set_result(
                Response(stream.status, stream.headers, body, True, self.recv_ns))

    def _fail_stream(self, stream: H2Stream, exc: ConnectionLost) -> None:
        stream.ended = stream.gone = True
        for waiter in (stream.headers_waiter, stream.done_waiter):
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # nobody may be waiting: mark it retrieved

    def _lose(self, exc: ConnectionLost) -> None:
        self._lost_exc = exc
        if self._settings is not None and not self._settings.done():
            self._settings.set_exception(exc)
            self._settings.exception()
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            self._fail_stream(stream, exc)

    def _retire(self) -> None:
        if self._sock is not None and self.tcp is not None:
            self.tcp.retire(self._sock)
            self._sock = None


def _error_name(code) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error {code}"
