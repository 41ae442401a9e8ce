"""A restart (a new server process on the same port) never serves an old cursor as its own.

Per transport: take a cursor from server A, stop A, start B on the same port,
publish on B, resume with A's cursor: /poll -> 410 with B's epoch; SSE -> the
stream starts with ``event: reset``; NDJSON -> a reset line; WebSocket -> a
reset message; then what B retained since its start, then live messages.
"""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from _srv_helpers import http, publish
from _timeouts import scaled
from websockets.asyncio.client import connect as ws_connect

from duplexbench.contract import Envelope, Reset, decode_message
from duplexbench.contract.longpoll import decode_batch
from duplexbench.contract.sse import SSEParser
from duplexbench.procs.server import ServerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def restarted():
    """(old epoch, cursor of A, running server B on A's port, B's epoch); B has seqs 1-2."""
    port = free_port()
    with ServerProcess("all", port=port) as a:
        for i in range(3):
            publish(a.url, "rs", f"a{i}")
        status, headers, body = http(f"{a.url}/poll?topic=rs&cursor=1")
        old_epoch = headers["Duplexbench-Epoch"]
        assert status == 200 and len(decode_batch(body)) == 2
    with ServerProcess("all", port=port) as b:
        new_epoch = json.loads(http(b.url + "/healthz")[2])["epoch"]
        assert new_epoch != old_epoch
        publish(b.url, "rs", "b1")
        publish(b.url, "rs", "b2")
        yield f"{old_epoch}-3", b, new_epoch


def check_reset(reset: Reset, epoch: str) -> None:
    assert reset == Reset(epoch, f"{epoch}-0", 2)


def test_longpoll_410_with_epoch(restarted):
    cursor, b, epoch = restarted
    status, headers, body = http(f"{b.url}/poll?topic=rs&cursor={cursor}")
    assert status == 410 and headers["Duplexbench-Epoch"] == epoch
    answer = json.loads(body)
    assert answer["epoch"] == epoch and answer["oldest_seq"] == 1 and "error" in answer
    check_reset(decode_message(body), epoch)  # the reset object's fields are all there
    status, _, body = http(f"{b.url}/poll?topic=rs&cursor={answer['cursor']}")
    assert [e.data for e in decode_batch(body)] == ["b1", "b2"]
    live = publish(b.url, "rs", "live")
    status, _, body = http(f"{b.url}/poll?topic=rs&cursor={epoch}-2")
    assert [e.seq for e in decode_batch(body)] == [live]


async def _read_until(read, parse, count):
    got = []
    while len(got) < count:
        chunk = await asyncio.wait_for(read(), scaled(5))
        assert chunk, "stream ended early"
        got += parse(chunk)
    return got


def test_sse_reset_event_first(restarted):
    cursor, b, epoch = restarted

    async def run():
        async with aiohttp.ClientSession() as session:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": cursor}
            async with session.get(f"{b.url}/stream?topic=rs", headers=headers) as response:
                assert response.headers["Duplexbench-Epoch"] == epoch
                parser = SSEParser()
                events = await _read_until(response.content.readany,
                                           lambda c: [e for e in parser.feed(c) if e.data], 3)
                publish(b.url, "rs", "live")
                events += await _read_until(response.content.readany,
                                            lambda c: [e for e in parser.feed(c) if e.data], 1)
        return events

    events = asyncio.run(run())
    assert events[0].event == "reset" and events[0].id == f"{epoch}-0"
    check_reset(decode_message(events[0].data), epoch)
    assert [json.loads(e.data)["data"] for e in events[1:]] == ["b1", "b2", "live"]
    assert [e.id for e in events[1:]] == [f"{epoch}-{s}" for s in (1, 2, 3)]


def test_ndjson_reset_line_first(restarted):
    cursor, b, epoch = restarted

    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{b.url}/stream?topic=rs&cursor={cursor}") as response:
                lines = [await asyncio.wait_for(response.content.readline(), scaled(5))
                         for _ in range(3)]
                publish(b.url, "rs", "live")
                lines.append(await asyncio.wait_for(response.content.readline(), scaled(5)))
        return [decode_message(line) for line in lines]

    messages = asyncio.run(run())
    check_reset(messages[0], epoch)
    assert all(isinstance(m, Envelope) for m in messages[1:])
    assert [m.data for m in messages[1:]] == ["b1", "b2", "live"]


def test_websocket_reset_message_first(restarted):
    cursor, b, epoch = restarted

    async def run():
        async with ws_connect(f"{b.url.replace('http', 'ws')}/ws?topic=rs&cursor={cursor}") as ws:
            assert ws.response.headers["Duplexbench-Epoch"] == epoch
            got = [await asyncio.wait_for(ws.recv(), scaled(5)) for _ in range(3)]
            publish(b.url, "rs", "live")
            got.append(await asyncio.wait_for(ws.recv(), scaled(5)))
        return [decode_message(m) for m in got]

    messages = asyncio.run(run())
    check_reset(messages[0], epoch)
    assert [m.data for m in messages[1:]] == ["b1", "b2", "live"]
