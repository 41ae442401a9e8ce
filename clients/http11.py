"""A small HTTP/1.1 client connection that counts every byte at the socket.

Why not aiohttp's client: the benchmark reports bytes on the wire per message,
HTTP headers and chunk framing included, and a Python load generator runs out
of CPU long before the server does (docs/MEASUREMENT). This connection is an
``asyncio.Protocol`` that sees each ``write`` and ``data_received`` (so the
counts are exact), parses responses with httptools' C parser (never by hand),
sends lean requests (only the headers HTTP/1.1 needs), and can stream a body
to a callback (SSE, NDJSON) instead of buffering it.

One request at a time per connection (no pipelining): keep-alive reuse, or
``Connection: close`` per request (long polling's ``keepalive = false``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httptools

from duplexbench.tcp import set_nodelay

from .base import ClientError, Endpoint, WireStats
from .sink import Sink

__all__ = ["ConnectionLost", "HTTP11Connection", "HttpSink", "Response"]

OnBody = Callable[[bytes], None]


class ConnectionLost(ClientError):
    """The connection closed (or broke) before the response was complete."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    #: Header names lower-cased; the last value wins (enough for this client).
    headers: dict[str, str]
    #: The whole body, or b"" when it was streamed to ``on_body``.
    body: bytes
    #: Whether the connection may carry another request.
    keep_alive: bool
    #: time.monotonic_ns() when the bytes completing the response were read.
    recv_ns: int


class HTTP11Connection(asyncio.Protocol):
    """``conn = await HTTP11Connection.open(endpoint, stats)``; then ``request()``."""

    def __init__(self, endpoint: Endpoint, stats: WireStats, tcp=None) -> None:
        self.endpoint = endpoint
        self.stats = stats
        self.tcp = tcp  # a clients.tcpinfo.TcpTally (or None): kernel byte counts
        self._sock = None
        self.transport: asyncio.Transport | None = None
        self.closed = False  # the connection is gone (or going): open a new one
        #: time.monotonic_ns() of the latest read: the receive time of what it carried.
        self.recv_ns = 0
        self.nodelay = False
        self._parser = httptools.HttpResponseParser(self)
        self._busy = False  # a request is in flight
        self._on_body: OnBody | None = None
        #: A streamed body's RawLog (clients.accounting): each piece is fed to it with
        #: the read's time, without a callback of our own in between.
        self._raw = None
        self._headers_waiter: asyncio.Future | None = None
        self._done_waiter: asyncio.Future | None = None
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._status = 0
        self._host_line = b"Host: %s\r\n" % endpoint.authority.encode()
        self._lost_exc: BaseException | None = None
        #: While a clients.reader.FastReader reads this socket: its HttpSink.
        self.sink: HttpSink | None = None

    @classmethod
    async def open(cls, endpoint: Endpoint, stats: WireStats, timeout: float = 10.0, *,
                   tcp=None, local_addr: tuple[str, int] | None = None,
                   ssl=None) -> "HTTP11Connection":
        """``ssl``: an ssl.SSLContext for https (certificates verified against it)."""
        loop = asyncio.get_running_loop()
        extra = {"ssl": ssl, "server_hostname": endpoint.host} if ssl is not None else {}
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: cls(endpoint, stats, tcp), endpoint.host,
                                       endpoint.port, local_addr=local_addr, **extra),
                timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectionLost(
                f"cannot connect to {endpoint.authority}: {exc or type(exc).__name__}"
            ) from None
        return conn

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.connections += 1
        self.nodelay = set_nodelay(transport)
        if self.tcp is not None:
            self._sock = transport.get_extra_info("socket")
            self.tcp.add(self._sock)

    def data_received(self, data: bytes) -> None:
        self.stats.bytes_down += len(data)
        self.recv_ns = time.monotonic_ns()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"bad HTTP response from {self.endpoint.authority}: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too: HTTP/1.1 has no use for half-open

    def connection_lost(self, exc: Exception | None) -> None:
        self._retire()
        self.closed = True
        self._fail(ConnectionLost(
            f"connection to {self.endpoint.authority} closed"
            + (f": {exc}" if exc else " by the server")
        ))

    def replay(self, data: bytes, recv_ns: int) -> None:
        """Parse a read the FastReader made at ``recv_ns`` (clients/reader.py), as
        :meth:`data_received` parses one made by the transport."""
        self.stats.bytes_down += len(data)
        self.recv_ns = recv_ns
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"bad HTTP response from {self.endpoint.authority}: {exc}"))
            self.close()

    # httptools callbacks (hot path: keep them short)

    def on_message_begin(self) -> None:
        self._headers = {}
        self._chunks = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status != 200:
            self._on_body = self._raw = None  # buffer an error body: the caller wants its message
        waiter = self._headers_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        raw = self._raw
        if raw is not None:
            raw.feed(body, self.recv_ns)
        elif self._on_body is not None:
            self._on_body(body)
        else:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        body = b"".join(self._chunks)
        self._chunks = []
        self.complete(Response(self._status, self._headers, body, keep_alive, self.recv_ns))

    def complete(self, response: Response) -> None:
        """The response to the request in flight is in: its waiter gets it."""
        self._busy = False
        self._on_body = self._raw = None
        waiter = self._done_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if not response.keep_alive:
            self.close()

    # Public API

    def take_parser(self, callbacks) -> None:
        """From the next response on, parse with ``callbacks`` as httptools' protocol (long
        polling's fast path, clients/longpoll.py: it answers and re-polls from inside the
        parser's callbacks, and calls :meth:`complete` for what it leaves to the caller).
        Call it between responses only: a parser cannot be swapped mid-message."""
        self._parser = httptools.HttpResponseParser(callbacks)

    @property
    def parser(self):
        return self._parser

    def write_request(self, data: bytes) -> None:
        """Write one more request on a connection whose request in flight is answered by a
        fast path (see :meth:`take_parser`); counted as :meth:`send` counts it."""
        self.write(data)
        self.stats.http_requests += 1

    def send(
        self,
        method: bytes,
        target: bytes,
        *,
        headers: bytes = b"",
        body: bytes = b"",
        close: bool = False,
    ) -> "asyncio.Future[Response]":
        """Write one request now; the future resolves with the complete response
        (or raises :class:`ConnectionLost`). Lets a caller know the request is
        on the wire before it waits (a long poll is "subscribed" once sent)."""
        return self._send(method, target, headers, body, close, None, streamed=False)

    async def request(
        self,
        method: bytes,
        target: bytes,
        *,
        headers: bytes = b"",
        body: bytes = b"",
        close: bool = False,
        on_body: OnBody | None = None,
        raw=None,
    ) -> Response:
        """Send one request; return the complete response, or, with ``on_body``,
        return at the end of the headers while the body streams to ``on_body``
        (then ``await wait_done()``); ``raw`` (a RawLog) takes a streamed body the same
        way, fed straight from the parser. A streamed response whose status is not
        200 is buffered instead: ``await wait_done()`` gives its body.

        ``headers`` are extra raw header lines, each ending in CRLF.
        """
        done = self._send(method, target, headers, body, close, on_body,
                          streamed=on_body is not None or raw is not None)
        self._raw = raw
        if on_body is None and raw is None:
            return await done
        await self._headers_waiter  # type: ignore[misc]
        return Response(self._status, self._headers, b"", True, self.recv_ns)

    def _send(self, method: bytes, target: bytes, headers: bytes, body: bytes,
              close: bool, on_body: OnBody | None, *, streamed: bool) -> "asyncio.Future[Response]":
        self._check_usable(target)
        loop = asyncio.get_running_loop()
        self._busy = True
        self._on_body = on_body
        self._done_waiter = done = loop.create_future()
        self._headers_waiter = loop.create_future() if streamed else None
        head = b"%s %s HTTP/1.1\r\n%s%s" % (method, target, self._host_line, headers)
        if body or method == b"POST":
            head += b"Content-Length: %d\r\n" % len(body)
        if close:
            head += b"Connection: close\r\n"
        self.write(head + b"\r\n" + body)
        self.stats.http_requests += 1
        return done

    async def wait_done(self) -> Response:
        """For a streamed response: wait for its end (raises ConnectionLost)."""
        assert self._done_waiter is not None, "no request in flight"
        return await self._done_waiter

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.stats.bytes_up += len(data)
        self.transport.write(data)

    @property
    def reusable(self) -> bool:
        return not self.closed and not self._busy

    @property
    def in_flight(self) -> bool:
        """A request is waiting for (the rest of) its response."""
        return self._busy and not self.closed

    def fileno(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("socket").fileno()

    def close(self) -> None:
        self._retire()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (tests force disconnects this way)."""
        self._retire()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # Internals

    def _retire(self) -> None:
        """Last TCP_INFO read while the socket still exists (before close); the
        FastReader lets go of the socket first (its pending reads are parsed)."""
        if self.sink is not None:
            sink, self.sink = self.sink, None
            sink.release()
        if self._sock is not None and self.tcp is not None:
            self.tcp.retire(self._sock)
            self._sock = None

    def _check_usable(self, target: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionLost(f"connection to {self.endpoint.authority} is closed")
        if self._busy:
            raise ClientError(
                f"request {target[:60]!r} while another is in flight: one request per connection"
            )

    def _fail(self, exc: ConnectionLost) -> None:
        self._busy = False
        for waiter in (self._headers_waiter, self._done_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
                # Nobody may be waiting (e.g. a streamed body's end): mark it retrieved.
                waiter.exception()


class HttpSink(Sink):
    """An HTTP/1.1 connection read by the FastReader: its reads go through the
    connection's own httptools parser (:meth:`HTTP11Connection.replay`), later
    for a streamed body (fed to ``raw``), at once for a long poll (``immediate``:
    the answer re-polls from the parser's callback)."""

    def __init__(self, conn: HTTP11Connection, raw=None, *, immediate: bool = False,
                 limit: int = 4096) -> None:
        super().__init__(conn.fileno(), raw, limit)
        self.conn = conn
        self.immediate = immediate
        self.replay = conn.replay  # type: ignore[method-assign]  # one call less per read
        conn.sink = self

    def attention(self, new: bytes) -> bool:
        """A chunked body's last chunk (``0\r\n\r\n``) ends the stream: the subscriber
        must see the response complete and resume. Stream data never holds CRLF
        (SSE and NDJSON lines end in LF), so this matches the end only; were it to
        match data, parsing early costs time, never correctness."""
        return new.endswith(b"0\r\n\r\n")

    def pause(self) -> None:
        assert self.conn.transport is not None
        self.conn.transport.pause_reading()

    def resume(self) -> None:
        transport = self.conn.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()
