"""HTTP streaming subscribers: one long-lived ``GET /stream`` response.

Two framings of the same stream (RFC 6202 §3): Server-Sent Events
(``Accept: text/event-stream``; resume with ``Last-Event-ID`` as a browser's
EventSource does) and chunked NDJSON (one envelope per line; resume with
``?cursor=``). The body is fed chunk by chunk, as httptools de-chunks it,
into the contract's incremental parsers; bytes are counted before
de-chunking, so chunk framing and heartbeats are part of the cost.
"""

from __future__ import annotations

import asyncio

from duplexbench.contract import ContractError, decode_envelope
from duplexbench.contract.http import ACCEPT_NDJSON, ACCEPT_SSE, PATH_STREAM
from duplexbench.contract.ndjson import NDJSONParser
from duplexbench.contract.sse import SSEParser

from .base import ClientError, OnError, OnMessage
from .http11 import ConnectionLost
from .httpsub import HttpSubscriber
from .publisher import HttpPublisher

__all__ = ["NDJSONSubscriber", "SSESubscriber", "StreamSubscriber"]


class StreamSubscriber(HttpSubscriber):
    """The shared life cycle; subclasses say how to ask, resume and parse."""

    accept = b""

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
        super().__init__(base_url, topic, on_message, cursor=cursor, role=role,
                         on_error=on_error, publisher=publisher, **fast)
        self._resumed = False  # whether the next request is a resumption

    # Per-framing hooks

    def _request_parts(self) -> tuple[bytes, bytes]:
        """(target, extra header lines) for the next stream request."""
        raise NotImplementedError

    def _new_body_handler(self):
        """A fresh parser wrapped as an ``on_body(chunk)`` callback."""
        raise NotImplementedError

    # Public methods

    async def start(self) -> None:
        """Connect; return once the server answered 200 (the subscription is live)."""
        if self._task is not None:
            raise RuntimeError("start() called twice")
        await self._connect()
        self._task = asyncio.create_task(self._run(), name=f"{self.transport} {self.topic}")

    # Internals

    async def _connect(self) -> None:
        conn = self._conn = await self._open()
        target, headers = self._request_parts()
        if self.on_raw is not None:  # the fast path: the parser feeds the RawLog itself
            self.on_raw.cut()  # a new connection: a partial event of the old one is dropped
            handler = {"raw": self.on_raw}
        else:
            handler = {"on_body": self._new_body_handler()}
        response = await conn.request(
            b"GET", target, headers=b"Accept: %s\r\n%s" % (self.accept, headers), **handler)
        self._learn_epoch(response.headers)
        if response.status != 200:
            body = (await conn.wait_done()).body
            conn.close()
            raise ClientError(
                f"GET {target.decode()} answered {response.status}: {body[:200].decode(errors='replace')}"
            )

    async def _run(self) -> None:
        while not self._closing:
            assert self._conn is not None
            try:
                await self._conn.wait_done()
                reason = "the server ended the stream"
            except ConnectionLost as exc:
                reason = str(exc)
            if self._closing:
                return
            self._conn.close()
            self._disconnected()
            self.stats.reconnects += 1
            self._resumed = True
            if self.on_raw is not None:
                self.cursor = self.on_raw.highest()
            self._error(f"{reason}; resuming from seq {self.cursor}")
            await self._reconnect()


class SSESubscriber(StreamSubscriber):
    transport = "sse"
    accept = ACCEPT_SSE.encode()

    def _request_parts(self) -> tuple[bytes, bytes]:
        base = b"%s?topic=%s" % (PATH_STREAM.encode(), self.topic.encode())
        if self._resumed:
            # As EventSource does: same URL, the last id in a header.
            return base, b"Last-Event-ID: %s\r\n" % self.cursor_text().encode()
        return base + b"&cursor=%s" % self.cursor_text().encode(), b""

    def _new_body_handler(self):
        feed = SSEParser().feed
        on_message = self.on_message
        conn = self._conn

        def on_body(chunk: bytes) -> None:
            for event in feed(chunk):
                if not event.data:
                    continue  # a retry-only event: nothing to deliver
                try:
                    env = decode_envelope(event.data)
                except ContractError as exc:
                    self._error(f"bad SSE event: {exc}")
                    continue
                self.cursor = env.seq
                on_message(env, conn.recv_ns)

        return on_body


class NDJSONSubscriber(StreamSubscriber):
    transport = "ndjson"
    accept = ACCEPT_NDJSON.encode()

    def _request_parts(self) -> tuple[bytes, bytes]:
        return b"%s?topic=%s&cursor=%s" % (PATH_STREAM.encode(), self.topic.encode(),
                                           self.cursor_text().encode()), b""

    def _new_body_handler(self):
        feed = NDJSONParser().feed
        on_message = self.on_message
        conn = self._conn

        def on_body(chunk: bytes) -> None:
            for line in feed(chunk):
                try:
                    env = decode_envelope(line)
                except ContractError as exc:
                    self._error(f"bad NDJSON line: {exc}")
                    continue
                self.cursor = env.seq
                on_message(env, conn.recv_ns)

        return on_body
