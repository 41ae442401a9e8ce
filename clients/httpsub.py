"""What long polling and streaming subscribers share: an HTTP/1.1 connection
downstream, and a separate keep-alive POST connection upstream.

HTTP transports have no upstream channel of their own (the article's point,
RFC 6202 §2), so :meth:`publish` goes through :class:`HttpPublisher`.
"""

from __future__ import annotations

import asyncio

from .base import OnError, OnMessage, Subscriber
from .http11 import HTTP11Connection
from .publisher import HttpPublisher

__all__ = ["HttpSubscriber"]


class HttpSubscriber(Subscriber):
    """The life cycle of a subscriber that reads over one HTTP11Connection."""

    def __init__(
        self,
        base_url: str,
        topic: str,
        on_message: OnMessage,
        *,
        cursor: int = 0,
        role: str = "sub",
        on_error: OnError | None = None,
        publisher: HttpPublisher | None = None,
        **fast,
    ) -> None:
        super().__init__(base_url, topic, on_message, cursor=cursor, role=role, on_error=on_error,
                         **fast)
        self._conn: HTTP11Connection | None = None
        self._publisher = publisher
        self._own_publisher = False
        self._backoff = self._new_backoff()

    async def publish(self, data: str, ts: int) -> None:
        """Publish with a POST on a separate connection (made on first use)."""
        if self._publisher is None:
            self._publisher = HttpPublisher(self.base_url, pool_size=1)
            self._own_publisher = True
        await self._publisher.publish(self.topic, data, ts)

    async def close(self) -> None:
        self._closing = True
        if self._conn is not None:
            self._conn.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._own_publisher and self._publisher is not None:
            await self._publisher.close()

    async def _open(self) -> HTTP11Connection:
        return await HTTP11Connection.open(self.endpoint, self.stats, tcp=self.tcp,
                                           local_addr=self.local_addr, ssl=self.ssl_context)

    def _learn_epoch(self, headers: dict[str, str]) -> None:
        """Every response names the server instance (contract v2): resume cursors
        then carry it, so a restarted server answers with a reset, not a mix-up."""
        epoch = headers.get("duplexbench-epoch")
        if epoch:
            self.epoch = epoch

    def drop_connection(self) -> None:
        """Abort the TCP connection as a network failure would (tests)."""
        if self._conn is not None:
            self._conn.abort()
