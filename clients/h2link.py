"""One HTTP/2 connection shared by a page of subscribers (``streams_per_connection``).

Its own module because the stream subscribers (clients.h2sub) and the RFC 8441 WebSocket
subscriber (clients.h2ws) both ride on it.
"""

from __future__ import annotations

import asyncio

from .base import WireStats, parse_base_url
from .h2conn import H2ClientConnection, h2_ssl_context

__all__ = ["H2Link", "make_links"]


class H2Link:
    """One HTTP/2 connection for a group of subscribers (a page), opened on demand."""

    def __init__(self, base_url: str, *, ssl_context=None, tcp=None,
                 local_addr: tuple[str, int] | None = None) -> None:
        self.endpoint = parse_base_url(base_url)
        if ssl_context is None and base_url.startswith("https:"):
            ssl_context = h2_ssl_context()
        self.ssl_context = ssl_context
        self.tcp = tcp
        self.local_addr = local_addr
        self.conn: H2ClientConnection | None = None
        self.users = 0  # subscribers still using it: the last one closes it
        self._opening: asyncio.Task | None = None

    async def connection(self, stats: WireStats) -> H2ClientConnection:
        """The live connection, or a new one (opened once however many ask at the same time;
        ``stats`` of the asker who opens it counts its bytes and the connection)."""
        conn = self.conn
        if conn is not None and not conn.closed:
            return conn
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._open(stats))
        opening = self._opening
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    async def _open(self, stats: WireStats) -> H2ClientConnection:
        self.conn = await H2ClientConnection.open(self.endpoint, stats, tcp=self.tcp,
                                                  local_addr=self.local_addr,
                                                  ssl=self.ssl_context)
        return self.conn

    def release(self) -> None:
        """A subscriber is done with it; the last one closes the connection (GOAWAY)."""
        self.users -= 1
        if self.users <= 0 and self.conn is not None:
            self.conn.close()

    def abort(self) -> None:
        """Drop the connection as a network failure would (tests): every stream on it is lost."""
        if self.conn is not None:
            self.conn.abort()


def make_links(count: int, per_link: int, base_url: str, *, ssl_context=None, tcp=None,
               local_addrs: list | None = None) -> list[H2Link]:
    """One link per ``per_link`` subscribers (subscriber j uses ``links[j // per_link]``);
    ``local_addrs[j]``: subscriber j's source address (a link takes its first member's)."""
    links = []
    for first in range(0, count, per_link):
        addr = local_addrs[first] if local_addrs else None
        links.append(H2Link(base_url, ssl_context=ssl_context, tcp=tcp, local_addr=addr))
    return links
