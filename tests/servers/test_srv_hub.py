"""The hub on its own (no sockets): sequence, retention ring, cursors, queues, fan-out."""

from __future__ import annotations

import asyncio

import pytest

from duplexbench.contract import decode_envelope, encode_envelope
from servers.hub import CursorAhead, CursorGone, Hub, SubState, TooManyTopics
from servers.metrics import Metrics


def run(coro):
    return asyncio.run(coro)


def hub(**kwargs) -> Hub:
    return Hub(Metrics(), **kwargs)


def test_seq_from_one_per_topic_and_encoded_once():
    async def go():
        h = hub()
        assert [h.publish("a", "x", 1), h.publish("a", "y", 2), h.publish("b", "z", 3)] == [1, 2, 1]
        a = h.read_after("a", 0, 10)
        assert [m.body for m in a] == [encode_envelope(1, "a", 1, "x"), encode_envelope(2, "a", 2, "y")]
        sub1, sub2 = h.subscribe("a", None), h.subscribe("a", None)
        h.publish("a", "w", 4)
        b1, b2 = await sub1.next_batch(), await sub2.next_batch()
        assert b1[0].body is b2[0].body  # the same bytes object fanned out
        assert h.metrics.published == 4
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


def test_subscribe_with_cursor_hands_over_backlog_then_live():
    async def go():
        h = hub(queue_limit=2)
        for i in range(5):
            h.publish("t", f"m{i}")
        sub = h.subscribe("t", 1)
        h.publish("t", "live")
        batch = await sub.next_batch()
        assert [m.seq for m in batch] == [2, 3, 4, 5, 6]  # backlog beyond the limit is fine
        assert [decode_envelope(m.body).data for m in batch][-1] == "live"
    run(go())


def test_overflow_drops_only_that_subscriber():
    async def go():
        h = hub(queue_limit=3)
        slow, fast = h.subscribe("t", None), h.subscribe("t", None)
        left = []
        slow.on_leave = left.append
        for i in range(4):
            h.publish("t", str(i))
            if i < 3:
                assert [m.seq for m in await fast.next_batch()] == [i + 1]
        assert slow.state is SubState.OVERFLOWED and left == [SubState.OVERFLOWED]
        assert len(slow) == 0 and await slow.next_batch() is None  # memory released
        h.publish("t", "more")
        assert len(slow) == 0
        assert [m.seq for m in await fast.next_batch()] == [4, 5]
    run(go())


def test_next_batch_timeout_and_shutdown():
    async def go():
        h = hub()
        sub = h.subscribe("t", None)
        assert await sub.next_batch(0.01) == []  # heartbeat time
        waiting = asyncio.create_task(sub.next_batch(10))
        poll = asyncio.create_task(h.wait("t", 10))
        await asyncio.sleep(0)
        h.shutdown()
        assert await waiting is None
        await asyncio.wait_for(poll, 1)
        await h.wait("t", 10)  # closing: returns at once
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
        h.unsubscribe(h.subscribe("a", None))
    run(go())
