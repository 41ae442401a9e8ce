"""Long-polling subscriber: one outstanding ``GET /poll`` at a time (RFC 6202 §2).

Each response carries a batch of envelopes (one ``json.loads`` for the whole
batch) and the next poll resumes from the last seq, so nothing published
between two polls is missed. ``keepalive=False`` opens a new connection with
``Connection: close`` for every poll, the variant RFC 6202 warns about; its
handshakes then show up in the byte and connection counts.
"""

from __future__ import annotations

import asyncio
import json

from duplexbench.contract import ContractError
from duplexbench.contract.http import PATH_POLL
from duplexbench.contract.longpoll import decode_batch

from .base import OnError, OnMessage
from .http11 import ConnectionLost
from .httpsub import HttpSubscriber
from .publisher import HttpPublisher

__all__ = ["LongPollSubscriber"]


class LongPollSubscriber(HttpSubscriber):
    transport = "longpoll"

    def __init__(
        self,
        base_url: str,
        topic: str,
        on_message: OnMessage,
        *,
        cursor: int = 0,
        role: str = "sub",
        on_error: OnError | None = None,
        keepalive: bool = True,
        max_batch: int = 1000,
        poll_timeout_s: float = 30.0,
        publisher: HttpPublisher | None = None,
        **fast,
    ) -> None:
        super().__init__(base_url, topic, on_message, cursor=cursor, role=role,
                         on_error=on_error, publisher=publisher, **fast)
        self.keepalive = keepalive
        # The fixed part of every poll target, so a poll only formats the cursor.
        self._target_head = b"%s?topic=%s&timeout=%s&max=%d&cursor=" % (
            PATH_POLL.encode(), topic.encode(), _seconds(poll_timeout_s), max_batch,
        )

    # Public methods

    async def start(self) -> None:
        """Send the first poll; return once it is on the wire (the subscription
        exists from then on: the server answers from ``cursor``)."""
        if self._task is not None:
            raise RuntimeError("start() called twice")
        first = await self._send_poll()
        self._task = asyncio.create_task(self._run(first), name=f"longpoll {self.topic}")

    # The poll loop

    async def _send_poll(self) -> "asyncio.Future":
        conn = self._conn
        if conn is None or not conn.reusable:
            conn = self._conn = await self._open()
        return conn.send(b"GET", self._target_head + self.cursor_text().encode(),
                         close=not self.keepalive)

    async def _run(self, pending: "asyncio.Future") -> None:
        while not self._closing:
            try:
                response = await pending
            except ConnectionLost as exc:
                if self._closing:
                    return
                self._disconnected()
                self.stats.reconnects += 1
                self._error(f"poll failed, resuming from cursor {self.cursor}: {exc}")
                await self._backoff.wait()
                pending = await self._next_poll()
                continue
            status = response.status
            if status != 410:
                self._learn_epoch(response.headers)
            if status == 200:
                self._deliver(response.body, response.recv_ns)
                self._backoff.reset()
            elif status == 204:
                pass  # held until the timeout with nothing new: poll again
            elif status == 410:
                self._skip_expired(response.body)
            else:
                self._error(f"poll answered {status}: {response.body[:200]!r}")
                await self._backoff.wait()
            pending = await self._next_poll()

    async def _next_poll(self) -> "asyncio.Future":
        """The next poll, reopening the connection (with backoff) until it goes out."""
        while True:
            try:
                return await self._send_poll()
            except ConnectionLost as exc:
                if self._closing:
                    raise asyncio.CancelledError from None
                self._error(f"cannot poll: {exc}")
                await self._backoff.wait()

    def _deliver(self, body: bytes, recv_ns: int) -> None:
        if self.on_raw is not None:  # the fast path: raw now, accounted later
            # The next poll needs the last seq now: only that one is parsed.
            last = body.rfind(b'{"seq":')
            if last >= 0:
                self.cursor = int(body[last + 7:body.index(b",", last)])
                self.on_raw.feed(body, recv_ns)
            return
        try:
            envelopes = decode_batch(body)
        except ContractError as exc:
            self._error(f"bad poll body: {exc}")
            return
        on_message = self.on_message
        for env in envelopes:
            on_message(env, recv_ns)
        if envelopes:
            self.cursor = envelopes[-1].seq

    def _skip_expired(self, body: bytes) -> None:
        """410: our cursor fell out of retention; resume at the oldest kept
        message (the gap shows up as loss in the accounting)."""
        try:
            obj = json.loads(body)
            oldest = int(obj["oldest_seq"])
        except (ValueError, KeyError, TypeError):
            self._error(f"410 without oldest_seq: {body[:200]!r}")
            return
        if obj.get("event") == "reset":  # contract v2: another server instance answered
            try:
                epoch, k = obj["epoch"], int(str(obj["cursor"]).rsplit("-", 1)[1])
            except (KeyError, ValueError, IndexError):
                self._error(f"bad reset object: {body[:200]!r}")
                return
            self._error(f"server restarted (epoch {self.epoch} -> {epoch}); continuing at {k}, "
                        "messages not received count as lost")
            self.epoch, self.cursor = epoch, k
            if self.on_raw is not None:
                self.on_raw.reset(k)
            return
        self._error(f"cursor {self.cursor} expired; resuming at {oldest}")
        self.cursor = max(self.cursor, oldest - 1)


def _seconds(value: float) -> bytes:
    return (b"%d" % value) if value == int(value) else (b"%g" % value)
