"""HttpPublisher: ``POST /publish`` over a small pool of keep-alive connections.

Publishing is open loop: a message due now must not wait for the previous
POST's response, so up to ``pool_size`` POSTs are in flight at once, one per
connection (HTTP/1.1 without pipelining). Messages queue only when all are
busy; the envelope's ``ts`` is stamped when the request is actually written,
so the delay spent queued shows in the intended-time latency, not hidden.

Connections are opened up front (:meth:`start`), so their handshakes happen
before any measurement. A POST that fails after it was written is not
retried (it may have been published): it is reported as an error, and the
load generator counts it as not sent rather than lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable

from duplexbench.contract.http import PATH_PUBLISH

from .base import ClientError, OnError, WireStats, parse_base_url
from .http11 import ConnectionLost, HTTP11Connection

__all__ = ["HttpPublisher", "PublishDone"]

#: ``done(sent_ns, seq, error)``: seq is None (and error says why) when it failed.
PublishDone = Callable[[int, "int | None", "str | None"], None]

_CONTENT_TYPE = b"Content-Type: text/plain; charset=utf-8\r\n"


class HttpPublisher:
    def __init__(self, base_url: str, *, pool_size: int = 8, stats: WireStats | None = None,
                 on_error: OnError | None = None) -> None:
        self.endpoint = parse_base_url(base_url)
        self.pool_size = pool_size
        self.stats = stats if stats is not None else WireStats()
        self.on_error = on_error
        #: Requests waiting for a free connection: (topic, data, ts or None, done).
        self._queue: deque[tuple[str, str, int | None, PublishDone]] = deque()
        self._idle: list[HTTP11Connection] = []
        self._open = 0  # connections in use or idle
        self._in_flight = 0
        self._drained: asyncio.Event | None = None
        self._closed = False

    # Public methods

    async def start(self) -> None:
        """Open the whole pool now, before anything is measured."""
        conns = await asyncio.gather(
            *(HTTP11Connection.open(self.endpoint, self.stats) for _ in range(self.pool_size - self._open))
        )
        self._open += len(conns)
        self._idle.extend(conns)

    def submit(self, topic: str, data: str, done: PublishDone, ts: int | None = None) -> None:
        """Publish without waiting; ``ts`` None = stamp the actual send time."""
        if self._closed:
            raise ClientError("publisher is closed")
        self._in_flight += 1
        if self._idle:
            asyncio.get_running_loop().create_task(self._post(self._idle.pop(), topic, data, ts, done))
        elif self._open < self.pool_size:
            self._open += 1
            asyncio.get_running_loop().create_task(self._post(None, topic, data, ts, done))
        else:
            self._queue.append((topic, data, ts, done))

    async def publish(self, topic: str, data: str, ts: int | None = None) -> int:
        """Publish and wait: the message's seq, or :class:`ClientError`."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def done(sent_ns: int, seq: int | None, error: str | None) -> None:
            if not future.done():
                if seq is None:
                    future.set_exception(ClientError(error or "publish failed"))
                else:
                    future.set_result(seq)

        self.submit(topic, data, done, ts)
        return await future

    @property
    def in_flight(self) -> int:
        """Submitted publishes not yet answered (queued ones included)."""
        return self._in_flight

    async def wait_idle(self) -> None:
        """Return when every submitted publish has been answered."""
        while self._in_flight:
            self._drained = asyncio.Event()
            await self._drained.wait()

    async def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    # The POST itself: one task per message, reusing connections

    async def _post(self, conn: HTTP11Connection | None, topic: str, data: str,
                    ts: int | None, done: PublishDone) -> None:
        while True:
            try:
                if conn is None or not conn.reusable:
                    conn = await HTTP11Connection.open(self.endpoint, self.stats)
            except ConnectionLost as exc:
                self._finish(done, time.monotonic_ns(), None, str(exc))
                conn = None
            else:
                sent_ns = time.monotonic_ns() if ts is None else ts
                target = b"%s?topic=%s&ts=%d" % (PATH_PUBLISH.encode(), topic.encode(), sent_ns)
                try:
                    response = await conn.request(
                        b"POST", target, headers=_CONTENT_TYPE, body=data.encode()
                    )
                except ConnectionLost as exc:
                    self._finish(done, sent_ns, None, f"POST {topic} failed: {exc}")
                else:
                    if response.status == 200:
                        try:
                            seq = json.loads(response.body)["seq"]
                        except (ValueError, KeyError, TypeError):
                            self._finish(done, sent_ns, None, f"POST {topic}: bad answer {response.body[:100]!r}")
                        else:
                            self._finish(done, sent_ns, seq, None)
                    else:
                        self._finish(done, sent_ns, None,
                                     f"POST {topic} answered {response.status}: {response.body[:200]!r}")
            # Take the next queued message on the same connection, if any.
            if self._queue and not self._closed:
                topic, data, ts, done = self._queue.popleft()
                continue
            if conn is not None and conn.reusable and not self._closed:
                self._idle.append(conn)
            else:
                if conn is not None:
                    conn.close()
                self._open -= 1
            return

    def _finish(self, done: PublishDone, sent_ns: int, seq: int | None, error: str | None) -> None:
        self._in_flight -= 1
        if error is not None:
            self.stats.errors += 1
            if self.on_error is not None:
                self.on_error(error)
        done(sent_ns, seq, error)
        if not self._in_flight and self._drained is not None:
            self._drained.set()
