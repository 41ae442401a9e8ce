"""The load generator's receive fast paths put the same bytes on the wire and lose nothing.

Long polling re-polls from inside the parser's callback (clients/longpoll.py,
_Repoll), streams feed their RawLog straight from the parser, WebSocket frames
are told apart without picows' enum: each against a real server, every
message accounted once, and every long poll written byte for byte as the
general path writes it.
"""

from __future__ import annotations

import asyncio
import re

from clients.accounting import RawLog, Samples, SubscriberLog
from clients.fastws import FastWebSocketSubscriber
from clients.http11 import HTTP11Connection
from clients.longpoll import LongPollSubscriber
from clients.publisher import HttpPublisher
from clients.stream import NDJSONSubscriber, SSESubscriber
from duplexbench.contract import make_payload

MESSAGES = 12


def _raw(delim: bytes | None) -> tuple[RawLog, SubscriberLog]:
    log = SubscriberLog(0, 0, Samples(), 0, MESSAGES)
    return RawLog(log, delim, limit=5), log  # a small limit: flushes happen mid-run too


async def _publish_all(url: str, topic: str) -> None:
    pub = HttpPublisher(url, pool_size=1)
    try:
        for i in range(MESSAGES):
            await pub.publish(topic, make_payload(i, 64), i + 1)
            if i == 5:  # a burst: one poll answer (or one read) may carry several messages
                await asyncio.gather(*(pub.publish(topic, f"x{j}", 1) for j in range(3)))
    finally:
        await pub.close()


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_long_poll_fast_path_requests_are_the_general_paths_bytes(server, monkeypatch):
    written: list[bytes] = []
    original = HTTP11Connection.write

    def record(self, data: bytes) -> None:
        written.append(data)
        original(self, data)

    monkeypatch.setattr(HTTP11Connection, "write", record)
    raw, log = _raw(None)

    async def main() -> None:
        sub = LongPollSubscriber(server.url, "fast-lp", lambda e, t: None, on_raw=raw)
        await sub.start()
        try:
            await _publish_all(server.url, "fast-lp")
            await _until(lambda: raw.highest() == MESSAGES + 3)
            assert sub._fast_conn is sub._conn  # the fast path answered
        finally:
            await sub.close()

    asyncio.run(asyncio.wait_for(main(), 20))
    authority = server.url.split("//")[1]
    polls = [w for w in written if w.startswith(b"GET /poll")]
    pattern = re.compile(rb"GET /poll\?topic=fast-lp&timeout=30&max=1000&cursor=([a-z0-9]+-)?\d+ "
                         rb"HTTP/1\.1\r\nHost: " + re.escape(authority.encode()) + rb"\r\n\r\n")
    assert len(polls) >= 3 and all(pattern.fullmatch(p) for p in polls), polls[:3]
    assert log.highest == MESSAGES + 3 and not log.gaps and log.duplicated == 0


def test_stream_and_websocket_fast_paths_account_every_message(server):
    async def one(cls, delim, topic) -> SubscriberLog:
        raw, log = _raw(delim)
        sub = cls(server.url, topic, lambda e, t: None, on_raw=raw)
        await sub.start()
        try:
            await _publish_all(server.url, topic)
            await _until(lambda: raw.highest() == MESSAGES + 3)
        finally:
            await sub.close()
        return log

    async def main() -> list[SubscriberLog]:
        return [await one(SSESubscriber, b"\n\n", "fast-sse"),
                await one(NDJSONSubscriber, b"\n", "fast-ndjson"),
                await one(FastWebSocketSubscriber, None, "fast-ws")]

    for log in asyncio.run(asyncio.wait_for(main(), 30)):
        assert log.highest == MESSAGES + 3 and not log.gaps and log.duplicated == 0
        # Measured messages (publish index < MESSAGES) were sampled once each.
        assert log._samples.delivered == MESSAGES
