"""The hub on its own: sequence, retention ring, cursors, and fan-out to real sockets.

Sinks are given real connections: one end of a socketpair wrapped in asyncio's
own transport and aiohttp's own BaseProtocol (what a server connection has); the
test reads the other end. No mocks: pausing is the transport's real high-water mark.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp.base_protocol import BaseProtocol

from duplexbench.contract import Reset, decode_envelope, decode_message, encode_envelope
from duplexbench.contract.websocket import parse_frame
from servers.fanout import WEBSOCKET, SinkState
from servers.hub import CursorAhead, CursorGone, Hub, TooManyTopics
from servers.metrics import Metrics


def run(coro):
    return asyncio.run(coro)


def hub(**kwargs) -> Hub:
    return Hub(Metrics(), **kwargs)


async def connection(rcvbuf: int | None = None):
    """(aiohttp protocol with a real transport, the peer socket the test reads)."""
    ours, peer = socket.socketpair()
    if rcvbuf:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_accepted_socket(lambda: BaseProtocol(loop), ours)
    return protocol, peer


async def read_frames(peer: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    loop = asyncio.get_running_loop()
    data, frames = b"", []
    while len(frames) < count:
        parsed = parse_frame(data)
        if parsed is None:
            chunk = await asyncio.wait_for(loop.sock_recv(peer, 1 << 20), timeout)
            assert chunk, "closed"
            data += chunk
            continue
        frames.append(parsed[2])
        data = data[parsed[3]:]
    return frames


def test_seq_from_one_per_topic_and_written_directly():
    async def go():
        h = hub()
        assert [h.publish("a", "x", 1), h.publish("a", "y", 2), h.publish("b", "z", 3)] == [1, 2, 1]
        a = h.read_after("a", 0, 10)
        assert [m.body for m in a] == [encode_envelope(1, "a", 1, "x"), encode_envelope(2, "a", 2, "y")]
        (p1, peer1), (p2, peer2) = await connection(), await connection()
        s1, s2 = h.subscribe("a", None, WEBSOCKET, p1), h.subscribe("a", None, WEBSOCKET, p2)
        h.publish("a", "w", 4)
        assert not s1.queue and s1.writer is None  # written straight to the socket, no task
        assert (await read_frames(peer1, 1)) == (await read_frames(peer2, 1)) == [
            encode_envelope(3, "a", 4, "w")]
        assert h.metrics.published == 4 and h.metrics.delivered["websocket"] == 2
    run(go())


@pytest.mark.parametrize("retention", [1, 3, 7])
def test_ring_wraps_and_reports_gone_cursors(retention):
    async def go():
        h = hub(retention=retention)
        for i in range(20):
            h.publish("t", f"m{i}", i)
        oldest = 21 - retention
        for cursor in range(oldest - 1, 21):
            got = [m.seq for m in h.read_after("t", cursor, 100)]
            assert got == list(range(cursor + 1, 21))
        with pytest.raises(CursorGone) as exc:
            h.read_after("t", oldest - 2, 100)
        assert exc.value.oldest_seq == oldest
        with pytest.raises(CursorAhead):
            h.read_after("t", 21, 100)
        assert [m.seq for m in h.read_after("t", oldest - 1, 2)] == [oldest, oldest + 1][:retention]
    run(go())


def test_retention_bytes_bound_keeps_the_newest():
    async def go():
        h = hub(retention=100, retention_bytes=300)
        for i in range(10):
            h.publish("t", "x" * 100, 0)
        kept = h.read_after("t", 9, 100)
        assert [m.seq for m in kept] == [10]
        with pytest.raises(CursorGone):
            h.read_after("t", 0, 100)
    run(go())


def test_unknown_topic_cursor_rules():
    h = hub()
    assert h.read_after("new", 0, 10) == []
    with pytest.raises(CursorAhead):
        h.read_after("new", 1, 10)


def test_subscribe_with_start_hands_over_backlog_then_live():
    async def go():
        h = hub(queue_limit=2)
        for i in range(5):
            h.publish("t", f"m{i}")
        protocol, peer = await connection()
        h.subscribe("t", 1, WEBSOCKET, protocol)
        h.publish("t", "live")
        frames = await read_frames(peer, 5)
        assert [decode_envelope(f).seq for f in frames] == [2, 3, 4, 5, 6]  # backlog beyond the limit is fine
        assert decode_envelope(frames[-1]).data == "live"
    run(go())


def test_back_pressured_sink_gets_everything_in_order():
    """A peer that stops reading: its transport pauses, the hub queues for it (and only
    for it), and once it reads again it gets every message once, in order."""
    async def go():
        h = hub(queue_limit=100_000)
        (slow, slow_peer), (fast, fast_peer) = await connection(rcvbuf=4096), await connection()
        s_slow = h.subscribe("t", None, WEBSOCKET, slow)
        s_fast = h.subscribe("t", None, WEBSOCKET, fast)
        payload = "x" * 2000
        for i in range(300):  # 600 kB: far more than the socket and transport buffers
            h.publish("t", payload)
            if i % 50 == 0:
                assert len(await read_frames(fast_peer, 50 if i else 1)) >= 1
        assert s_slow.queue and s_slow.writer is not None  # back-pressured: queued, writer task
        assert not s_fast.queue
        frames = await read_frames(slow_peer, 300)
        assert [decode_envelope(f).seq for f in frames] == list(range(1, 301))
        await asyncio.sleep(0.05)
        assert not s_slow.queue and s_slow.writer is None  # ready again: the task is gone
        assert h.metrics.delivered["websocket"] >= 300
    run(go())


def test_burst_rule_waits_for_room_then_drops_only_a_stuck_sink():
    async def go():
        h = hub(queue_limit=4, slow_grace_s=0.3)
        (stuck, _stuck_peer), (reader, reader_peer) = await connection(4096), await connection(4096)
        s_stuck = h.subscribe("t", None, WEBSOCKET, stuck)
        s_reader = h.subscribe("t", None, WEBSOCKET, reader)
        left = []
        s_stuck.on_leave = left.append
        loop = asyncio.get_running_loop()
        reading = asyncio.create_task(read_frames(reader_peer, 200, timeout=5))
        started = loop.time()
        for _ in range(200):
            h.publish("t", "y" * 4000)
            if h.congested_topic("t"):
                await h.wait_room("t")
        got = await reading
        assert [decode_envelope(f).seq for f in got] == list(range(1, 201))  # the reader: all
        assert s_stuck.state is SinkState.OVERFLOWED and left == [SinkState.OVERFLOWED]
        assert not s_stuck.queue  # memory released
        assert s_reader.state is SinkState.OPEN
        assert h.metrics.slow_consumer_drops["websocket"] == 1
        assert loop.time() - started >= 0.3  # the publisher waited out the grace once
    run(go())


def test_shutdown_ends_sinks_and_held_polls():
    async def go():
        h = hub()
        protocol, _peer = await connection()
        sink = h.subscribe("t", None, WEBSOCKET, protocol)
        poll = asyncio.create_task(h.wait("t", 10))
        await asyncio.sleep(0)
        h.begin_shutdown()
        await asyncio.wait_for(poll, 1)
        await h.flush(1)
        h.shutdown()
        assert await asyncio.wait_for(sink.done, 1) is SinkState.CLOSED
        await h.wait("t", 10)  # closing: returns at once
    run(go())


def test_held_polls_share_one_encoded_batch():
    async def go():
        h = hub()
        h.publish("t", "a")
        first = h.read_batch("t", 0, 10)
        assert first[1] == 1 and h.read_batch("t", 0, 10)[0] is first[0]
        h.publish("t", "b")  # a publish invalidates it
        assert h.read_batch("t", 0, 10)[1] == 2
        assert h.read_batch("none", 0, 10)[1] == 0
    run(go())


def test_wait_is_woken_by_publish():
    async def go():
        h = hub()
        waiter = asyncio.create_task(h.wait("t", 10))
        await asyncio.sleep(0)
        h.publish("t", "x")
        await asyncio.wait_for(waiter, 1)
    run(go())


def test_pad_and_topic_limit():
    async def go():
        h = hub(pad_bytes=9, max_topics=1)
        h.publish("a", "x", 1)
        body = h.read_after("a", 0, 1)[0].body
        assert body == encode_envelope(1, "a", 1, "x")[:-1] + b',"pad":""}'
        with pytest.raises(TooManyTopics):
            h.publish("b", "x")
        protocol, _peer = await connection()
        h.unsubscribe(h.subscribe("a", None, WEBSOCKET, protocol))
    run(go())


def test_cursor_rules_table_property():
    """servers/README.md's cursor table, for any retention, topic length and cursor."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from duplexbench.contract import Cursor

    @settings(max_examples=150, deadline=None)
    @given(st.integers(1, 8), st.integers(0, 20), st.sampled_from(["same", "other", None, "absent"]),
           st.integers(0, 30))
    def check(retention, published, epoch_kind, seq):
        async def go():
            h = hub(retention=retention)
            for i in range(published):
                h.publish("t", str(i))
            last = published
            oldest = max(1, published - retention + 1)
            if epoch_kind == "absent":
                assert h.position("t", None) == (last, None)
                return
            epoch = {"same": h.epoch, "other": "zz9", None: None}[epoch_kind]
            cursor = Cursor(epoch, seq)
            if seq == 0:
                assert h.position("t", cursor) == (oldest - 1, None)
            elif epoch_kind == "other":
                start, reset = h.position("t", cursor)
                assert start == oldest - 1 and reset is not None
                assert decode_message(reset) == Reset(h.epoch, f"{h.epoch}-{oldest - 1}", last)
            elif seq > last:
                with pytest.raises(CursorAhead):
                    h.position("t", cursor)
            elif seq < oldest - 1:
                with pytest.raises(CursorGone) as exc:
                    h.position("t", cursor)
                assert exc.value.cursor == f"{h.epoch}-{oldest - 1}"
            else:
                assert h.position("t", cursor) == (seq, None)
                assert [m.seq for m in h.read_after("t", seq, 100)] == list(range(seq + 1, last + 1))
        run(go())

    check()
