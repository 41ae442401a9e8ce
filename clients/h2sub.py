"""Long polling, SSE and NDJSON subscribers over HTTP/2, and the connection a page shares.

Why: over HTTP/2 the transports' loops are the same as over HTTP/1.1 (a poll
answered, a poll sent; a stream read until it ends, then resumed with its
cursor, epochs and resets included), only the framing of HTTP changes. So
these classes are the HTTP/1.1 subscribers of clients.longpoll and
clients.stream with one difference: their ``_open`` gives an :class:`H2Channel`
(a stream on an HTTP/2 connection with the interface of ``HTTP11Connection``)
instead of a TCP connection of their own.

:class:`H2Link` is that connection, shared by the subscribers of one page
(LoadSpec ``streams_per_connection``: N subscriptions multiplexed on one TCP
connection, as a browser multiplexes a page's components); it is opened by
the first subscriber that needs it and reopened, once, by the first one that
needs it after it was lost. Its bytes and its opening are counted in the
stats of the subscriber that opened it (sums over subscribers are exact);
every subscriber counts its own requests (HEADERS frames sent).

Publishing from a subscriber (tools, tests) is a POST on the page's own
connection: one connection per page is what HTTP/2 is for. The load
generator's publisher process has its own h2 mode (clients.h2pub).
"""

from __future__ import annotations

import asyncio

from duplexbench.contract.http import PATH_PUBLISH

from .base import ClientError, WireStats
from .h2conn import H2ClientConnection, H2Stream
from .h2link import H2Link
from .http11 import ConnectionLost, Response
from .longpoll import LongPollSubscriber
from .stream import NDJSONSubscriber, SSESubscriber

__all__ = ["H2Channel", "H2LongPollSubscriber", "H2NDJSONSubscriber", "H2SSESubscriber",
           "header_list"]


class H2Channel:
    """One subscriber's requests on a (shared) HTTP/2 connection, one at a time.

    It has the interface of ``HTTP11Connection`` that the HTTP/1.1 subscribers use
    (``send``, ``request(on_body=)``, ``wait_done``, ``reusable``, ``recv_ns``,
    ``close``, ``abort``), so long polling, SSE and NDJSON run over a stream with
    their own loops. Closing a channel cancels its stream, never the connection
    (other subscribers' streams share it); ``abort`` drops the whole connection.
    """

    def __init__(self, conn: H2ClientConnection, stats: WireStats) -> None:
        self.conn = conn
        self.stats = stats
        self._stream: H2Stream | None = None
        self._closed = False

    @property
    def recv_ns(self) -> int:
        return self.conn.recv_ns

    @property
    def closed(self) -> bool:
        return self._closed or self.conn.closed

    @property
    def reusable(self) -> bool:
        return not self.closed and (self._stream is None or self._stream.ended)

    def send(self, method: bytes, target: bytes, *, headers: bytes = b"", body: bytes = b"",
             close: bool = False) -> "asyncio.Future[Response]":
        """The request now; the future gives the complete response. ``close`` has no
        HTTP/2 form (RFC 9113 8.2.2 forbids Connection): refused rather than ignored."""
        if close:
            raise ClientError("Connection: close has no HTTP/2 form; use keep-alive with http = 2")
        return self._open(method, target, headers, body, None).done_waiter

    async def request(self, method: bytes, target: bytes, *, headers: bytes = b"",
                      body: bytes = b"", close: bool = False, on_body=None, raw=None) -> Response:
        if close:
            raise ClientError("Connection: close has no HTTP/2 form; use keep-alive with http = 2")
        if raw is not None:  # the load generator's RawLog, as HTTP11Connection.request takes it
            conn = self.conn
            on_body = lambda data: raw.feed(data, conn.recv_ns)  # noqa: E731
        stream = self._open(method, target, headers, body, on_body)
        if on_body is None:
            return await stream.done_waiter
        await stream.headers_waiter
        return Response(stream.status, stream.headers, b"", True, self.conn.recv_ns)

    async def wait_done(self) -> Response:
        assert self._stream is not None, "no request in flight"
        return await self._stream.done_waiter

    def close(self) -> None:
        self._closed = True
        if self._stream is not None and not self._stream.ended:
            self.conn.reset(self._stream)

    def abort(self) -> None:
        self._closed = True
        self.conn.abort()

    def _open(self, method: bytes, target: bytes, headers: bytes, body: bytes,
              on_body) -> H2Stream:
        if self._closed:
            raise ConnectionLost(f"channel to {self.conn.endpoint.authority} is closed")
        if self._stream is not None and not self._stream.ended:
            raise ClientError(f"request {target[:60]!r} while another is in flight on this channel")
        extra = header_list(headers)
        if body or method == b"POST":
            extra.append((b"content-length", b"%d" % len(body)))
        self._stream = self.conn.request(method, target, extra, body, on_data=on_body,
                                         stats=self.stats)
        return self._stream


def header_list(raw: bytes) -> list[tuple[bytes, bytes]]:
    """HTTP/1.1 header lines (``Name: value\\r\\n``...) as HTTP/2 fields (lower-case names)."""
    fields = []
    for line in raw.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            fields.append((name.strip().lower(), value.strip()))
    return fields


class _OverH2:
    """What the HTTP/2 variants change: where requests go (a channel on the link)."""

    #: The HTTP version the subscriber speaks (the LoadSpec's ``http``).
    http = "2"

    def __init__(self, *args, link: H2Link | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if link is None:  # a page of one: its own connection
            link = H2Link(self.base_url, ssl_context=self.ssl_context, tcp=self.tcp,
                          local_addr=self.local_addr)
        self.link = link
        link.users += 1

    async def _open(self) -> H2Channel:
        return H2Channel(await self.link.connection(self.stats), self.stats)

    async def publish(self, data: str, ts: int) -> None:
        """POST /publish on the page's connection (a stream of its own)."""
        channel = await self._open()
        target = b"%s?topic=%s&ts=%d" % (PATH_PUBLISH.encode(), self.topic.encode(), ts)
        response = await channel.request(b"POST", target, body=data.encode(),
                                         headers=b"Content-Type: text/plain; charset=utf-8\r\n")
        if response.status != 200:
            raise ClientError(f"POST {target.decode()} answered {response.status}: "
                              f"{response.body[:200]!r}")

    async def close(self) -> None:
        await super().close()  # cancels this subscriber's stream (RST_STREAM), not the others'
        self.link.release()


class H2LongPollSubscriber(_OverH2, LongPollSubscriber):
    """Long polling over HTTP/2: each poll is a stream; HPACK shrinks the repeated headers."""

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get("keepalive", True) is False:
            raise ClientError("long polling with keepalive = false (Connection: close per poll) "
                              "has no HTTP/2 form; expected keepalive = true with http = 2")
        super().__init__(*args, **kwargs)
        # The HTTP/1.1 fast path (longpoll._Repoll) parses a connection's bytes; a poll over
        # HTTP/2 is a stream of frames, so every answer goes through the poll task.
        self._fast = False


class H2SSESubscriber(_OverH2, SSESubscriber):
    """SSE over HTTP/2: the stream's DATA frames carry the events (no chunk framing)."""


class H2NDJSONSubscriber(_OverH2, NDJSONSubscriber):
    """NDJSON over HTTP/2."""
