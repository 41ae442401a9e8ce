"""Each transport's client against the real server (``python -m servers``).

Order and content of delivered envelopes, resumption after a forced
disconnect, and the bytes on the wire counted at the socket (RFC 6455 §5.2
frame headers, HTTP headers on every long poll).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from clients.base import ClientError
from clients.longpoll import LongPollSubscriber
from clients.publisher import HttpPublisher
from clients.stream import NDJSONSubscriber, SSESubscriber
from clients.websocket import WebSocketSubscriber
from duplexbench.contract import Envelope, encode_envelope
from duplexbench.contract.websocket import encode_publish

SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))
SUBSCRIBERS = {
    "longpoll": LongPollSubscriber,
    "sse": SSESubscriber,
    "ndjson": NDJSONSubscriber,
    "websocket": WebSocketSubscriber,
}
#: Heartbeats and pings off (for the duration of a test): exact byte counts.
QUIET = ["--heartbeat", "60", "--ping-interval", "60", "--ping-timeout", "60"]


def run(coro, timeout: float = 15.0):
    return asyncio.run(asyncio.wait_for(coro, timeout * SCALE))


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout * SCALE
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.recv_ns: list[int] = []

    def __call__(self, env: Envelope, recv_ns: int) -> None:
        self.envelopes.append(env)
        self.recv_ns.append(recv_ns)

    @property
    def seqs(self) -> list[int]:
        return [e.seq for e in self.envelopes]


@pytest.mark.parametrize("transport", list(SUBSCRIBERS))
def test_receives_published_messages_in_order(server, transport):
    async def main():
        topic = f"order-{transport}"
        inbox = Inbox()
        sub = SUBSCRIBERS[transport](server.url, topic, inbox)
        pub = HttpPublisher(server.url, pool_size=1)
        await sub.start()
        try:
            for i in range(5):
                assert await pub.publish(topic, f"message {i} ✓", ts=1000 + i) == i + 1
            await wait_for(lambda: len(inbox.envelopes) >= 5)
            await asyncio.sleep(0.05)
        finally:
            await sub.close()
            await pub.close()
        assert inbox.envelopes == [Envelope(i + 1, topic, 1000 + i, f"message {i} ✓") for i in range(5)]
        assert inbox.recv_ns == sorted(inbox.recv_ns) and inbox.recv_ns[0] > 0
        assert sub.cursor == 5 and sub.stats.reconnects == 0 and sub.stats.errors == 0

    run(main())


@pytest.mark.parametrize("transport", list(SUBSCRIBERS))
def test_resumes_after_forced_disconnect_without_loss_or_duplicate(server, transport):
    async def main():
        topic = f"resume-{transport}"
        inbox = Inbox()
        sub = SUBSCRIBERS[transport](server.url, topic, inbox)
        pub = HttpPublisher(server.url, pool_size=1)
        await sub.start()
        try:
            for i in range(3):
                await pub.publish(topic, f"before {i}")
            await wait_for(lambda: len(inbox.envelopes) >= 3)
            connections = sub.stats.connections
            sub.drop_connection()
            for i in range(3):  # published while the subscriber is away
                await pub.publish(topic, f"after {i}")
            await wait_for(lambda: len(inbox.envelopes) >= 6)
            await asyncio.sleep(0.1)  # a duplicate would arrive now
        finally:
            await sub.close()
            await pub.close()
        assert inbox.seqs == [1, 2, 3, 4, 5, 6]
        assert [e.data for e in inbox.envelopes][3:] == ["after 0", "after 1", "after 2"]
        assert sub.stats.reconnects == 1
        assert sub.stats.connections == connections + 1

    run(main())


def test_websocket_frame_costs_rfc6455_header_bytes(start_server):
    server = start_server("all", args=QUIET)

    async def main():
        inbox = Inbox()
        sub = WebSocketSubscriber(server.url, "bytes-ws", inbox)
        pub = HttpPublisher(server.url, pool_size=1)
        await sub.start()
        handshake_up, handshake_down = sub.stats.bytes_up, sub.stats.bytes_down
        assert handshake_up > 100 and handshake_down > 100  # the upgrade is counted too
        try:
            # Server -> client, under 126 bytes: 2 header bytes, no mask.
            before = sub.stats.bytes_down
            await pub.publish("bytes-ws", "small", ts=42)
            await wait_for(lambda: len(inbox.envelopes) == 1)
            envelope = encode_envelope(1, "bytes-ws", 42, "small")
            assert len(envelope) < 126
            assert sub.stats.bytes_down - before == len(envelope) + 2
            # Server -> client, 126..65535 bytes: 4 header bytes.
            before = sub.stats.bytes_down
            await pub.publish("bytes-ws", "m" * 200, ts=43)
            await wait_for(lambda: len(inbox.envelopes) == 2)
            assert sub.stats.bytes_down - before == len(encode_envelope(2, "bytes-ws", 43, "m" * 200)) + 4
            # Client -> server publish frame: 2 header bytes + 4 mask bytes.
            before_up, before_down = sub.stats.bytes_up, sub.stats.bytes_down
            sub.publish_nowait("up", 44)
            frame = encode_publish("up", 44).encode()
            assert len(frame) < 126
            assert sub.stats.bytes_up - before_up == len(frame) + 6
            await wait_for(lambda: len(inbox.envelopes) == 3)  # it comes back on the topic
            assert inbox.envelopes[2] == Envelope(3, "bytes-ws", 44, "up")
            assert sub.stats.bytes_down - before_down == len(encode_envelope(3, "bytes-ws", 44, "up")) + 2
            assert sub.stats.http_requests == 1 and sub.stats.connections == 1
        finally:
            await sub.close()
            await pub.close()

    run(main())


@pytest.mark.parametrize("keepalive", [True, False])
def test_long_poll_bytes_include_http_headers(start_server, keepalive):
    server = start_server("all", args=QUIET)

    async def main():
        inbox = Inbox()
        topic = f"bytes-lp-{keepalive}"
        sub = LongPollSubscriber(server.url, topic, inbox, keepalive=keepalive)
        pub = HttpPublisher(server.url, pool_size=1)
        await sub.start()
        try:
            await asyncio.sleep(0.1)
            down, requests = sub.stats.bytes_down, sub.stats.http_requests
            await pub.publish(topic, "small", ts=42)
            await wait_for(lambda: len(inbox.envelopes) == 1)
            await wait_for(lambda: sub.stats.http_requests == requests + 1)  # the next poll is out
        finally:
            await sub.close()
            await pub.close()
        body = b"[" + encode_envelope(1, topic, 42, "small") + b"]"
        per_message = sub.stats.bytes_down - down
        assert per_message > len(body) + len(b"HTTP/1.1 200 OK\r\n") + 20  # headers are counted
        assert sub.stats.bytes_up > 0
        assert sub.stats.connections == (1 if keepalive else 2)

    run(main())


def test_stream_bytes_include_framing(start_server):
    server = start_server("all", args=QUIET)

    async def main():
        results = {}
        pub = HttpPublisher(server.url, pool_size=1)
        for cls in (SSESubscriber, NDJSONSubscriber):
            inbox = Inbox()
            topic = f"bytes-{cls.transport}"
            sub = cls(server.url, topic, inbox)
            await sub.start()
            await asyncio.sleep(0.05)
            before = sub.stats.bytes_down
            await pub.publish(topic, "small", ts=42)
            await wait_for(lambda: len(inbox.envelopes) == 1)
            results[cls.transport] = sub.stats.bytes_down - before
            await sub.close()
        await pub.close()
        return results

    results = run(main())
    envelope = len(encode_envelope(1, "bytes-sse", 42, "small"))
    # SSE "id: 1\ndata: ...\n\n" and NDJSON "...\n", each in an HTTP chunk ("HEX\r\n...\r\n").
    assert results["sse"] >= envelope + len("id: 1\ndata: \n\n") + 5
    assert results["ndjson"] >= envelope + 1 + 5


@pytest.mark.parametrize("transport", list(SUBSCRIBERS))
def test_publish_through_the_subscriber_interface(server, transport):
    """``publish`` is part of the common interface: a WS frame, or a POST."""
    async def main():
        topic = f"self-{transport}"
        inbox = Inbox()
        sub = SUBSCRIBERS[transport](server.url, topic, inbox)
        await sub.start()
        try:
            await sub.publish("to myself", 77)
            await wait_for(lambda: len(inbox.envelopes) == 1)
        finally:
            await sub.close()
        assert inbox.envelopes == [Envelope(1, topic, 77, "to myself")]
        if transport == "websocket":  # up its own connection
            assert sub.stats.bytes_up >= len(encode_publish("to myself", 77)) + 6
        elif transport != "longpoll":  # a POST on a separate, separately counted connection
            assert sub.stats.http_requests == 1 and sub.stats.bytes_up < 300

    run(main())


@pytest.mark.parametrize("transport", ["sse", "ndjson", "websocket"])
def test_refused_subscription_is_a_clear_error(server, transport):
    async def main():
        sub = SUBSCRIBERS[transport](server.url, "bad topic!", Inbox())
        with pytest.raises(ClientError, match="400|bad topic"):
            await sub.start()
        await sub.close()

    run(main())


def test_long_poll_skips_an_expired_cursor_and_says_so(start_server):
    server = start_server("all", args=["--retention", "3", *QUIET])

    async def main():
        pub = HttpPublisher(server.url, pool_size=1)
        for i in range(10):
            await pub.publish("retention", f"m{i}")
        inbox, errors = Inbox(), []
        # Contract v2: cursor 0 means "from the oldest retained" (never 410); cursor 2
        # is older than the 3 messages kept: 410, and the client resumes at oldest - 1.
        sub = LongPollSubscriber(server.url, "retention", inbox, on_error=errors.append, cursor=2)
        await sub.start()
        try:
            await wait_for(lambda: len(inbox.envelopes) >= 3)
        finally:
            await sub.close()
            await pub.close()
        assert inbox.seqs == [8, 9, 10]
        assert sub.stats.errors == 1 and "cursor 2 expired" in errors[0]

    run(main())


@pytest.mark.parametrize("transport", ["sse", "ndjson", "websocket"])
def test_resumes_after_the_server_drops_a_slow_consumer(start_server, transport):
    """The server closes a connection whose queue overflows (DESIGN.md); the
    client resumes from its cursor and still gets every message exactly once."""
    server = start_server("all", args=["--queue-limit", "4", *QUIET])

    async def main():
        topic = f"slow-{transport}"
        inbox = Inbox()
        sub = SUBSCRIBERS[transport](server.url, topic, inbox)
        pub = HttpPublisher(server.url, pool_size=4)
        await sub.start()
        await asyncio.sleep(0.05)
        sub._conn.transport.pause_reading()  # a consumer that stops reading
        try:
            count, payload = 120, "p" * 60_000  # ~7 MB: more than the socket buffers hold
            await asyncio.gather(*(pub.publish(topic, payload) for _ in range(count)))
            await asyncio.sleep(0.2)
            sub._conn.transport.resume_reading()
            await wait_for(lambda: len(inbox.envelopes) >= count, timeout=15)
            await asyncio.sleep(0.1)
        finally:
            await sub.close()
            await pub.close()
        assert inbox.seqs == list(range(1, count + 1))
        assert sub.stats.reconnects >= 1

    run(main(), timeout=30)
