"""Resume per transport: disconnect, messages published, reconnect with the cursor ->
exactly the missed messages, in order, once (and then live ones)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from _srv_helpers import http, publish
from _timeouts import scaled
from websockets.asyncio.client import connect as ws_connect

from duplexbench.contract import decode_envelope
from duplexbench.contract.longpoll import decode_batch
from duplexbench.contract.sse import SSEParser
from duplexbench.procs.server import ServerProcess


@pytest.fixture(scope="module")
def srv():
    with ServerProcess("all") as server:
        yield server


def publish_range(base, topic, start, stop):
    return [publish(base, topic, f"m{i}") for i in range(start, stop)]


def test_longpoll_cursor(srv):
    publish_range(srv.url, "r-lp", 0, 3)
    status, _, body = http(f"{srv.url}/poll?topic=r-lp&cursor=0")
    cursor = decode_batch(body)[-1].seq
    assert cursor == 3
    missed = publish_range(srv.url, "r-lp", 3, 8)  # nobody polling
    status, _, body = http(f"{srv.url}/poll?topic=r-lp&cursor={cursor}")
    assert [(e.seq, e.data) for e in decode_batch(body)] == [(s, f"m{s - 1}") for s in missed]
    # max splits a backlog; the next cursor picks up exactly where the batch ended.
    _, _, first = http(f"{srv.url}/poll?topic=r-lp&cursor=3&max=2")
    _, _, rest = http(f"{srv.url}/poll?topic=r-lp&cursor=5")
    assert [e.seq for e in decode_batch(first) + decode_batch(rest)] == missed
    assert http(f"{srv.url}/poll?topic=r-lp&cursor=8&timeout=0")[0] == 204


async def _sse_read(response, parser, count):
    events = []
    while len(events) < count:
        chunk = await asyncio.wait_for(response.content.readany(), scaled(5))
        assert chunk, "stream ended early"
        events += [e for e in parser.feed(chunk) if e.id]
    return events


def test_sse_last_event_id(srv):
    async def run():
        async with aiohttp.ClientSession() as session:
            url = f"{srv.url}/stream?topic=r-sse&cursor=0"
            accept = {"Accept": "text/event-stream"}
            async with session.get(url, headers=accept) as response:
                publish_range(srv.url, "r-sse", 0, 3)
                parser = SSEParser()
                await _sse_read(response, parser, 3)
                last_id = parser.last_event_id
            epoch = response.headers["Duplexbench-Epoch"]
            assert last_id == f"{epoch}-3"
            missed = publish_range(srv.url, "r-sse", 3, 7)
            # The URL still says cursor=0: Last-Event-ID (the browser's reconnect) wins.
            async with session.get(url, headers={**accept, "Last-Event-ID": last_id}) as response:
                parser = SSEParser()
                events = await _sse_read(response, parser, len(missed))
                live = publish(srv.url, "r-sse", "live")
                events += await _sse_read(response, parser, 1)
                with pytest.raises(asyncio.TimeoutError):  # nothing more: no duplicates
                    await asyncio.wait_for(response.content.readany(), 0.3)
            envelopes = [decode_envelope(e.data) for e in events]
            assert [e.seq for e in envelopes] == [*missed, live]
            assert [e.id for e in events] == [f"{epoch}-{s}" for s in [*missed, live]]

    asyncio.run(run())


def test_ndjson_cursor(srv):
    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{srv.url}/stream?topic=r-nd") as response:
                await asyncio.sleep(0.1)
                publish_range(srv.url, "r-nd", 0, 2)
                lines = [await response.content.readline() for _ in range(2)]
            cursor = decode_envelope(lines[-1]).seq
            missed = publish_range(srv.url, "r-nd", 2, 6)
            async with session.get(f"{srv.url}/stream?topic=r-nd&cursor={cursor}",
                                   headers={"Accept": "application/x-ndjson"}) as response:
                got = []
                while len(got) < len(missed):
                    line = await asyncio.wait_for(response.content.readline(), scaled(5))
                    if line.strip():
                        got.append(decode_envelope(line))
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(response.content.readline(), 0.3)
            assert [(e.seq, e.data) for e in got] == [(s, f"m{s - 1}") for s in missed]

    asyncio.run(run())


def test_websocket_cursor(srv):
    async def run():
        url = srv.url.replace("http://", "ws://")
        async with ws_connect(f"{url}/ws?topic=r-ws") as ws:
            await asyncio.sleep(0.1)
            publish_range(srv.url, "r-ws", 0, 2)
            cursor = [decode_envelope(await ws.recv()) for _ in range(2)][-1].seq
        missed = publish_range(srv.url, "r-ws", 2, 9)
        async with ws_connect(f"{url}/ws?topic=r-ws&cursor={cursor}") as ws:
            got = [decode_envelope(await asyncio.wait_for(ws.recv(), scaled(5))) for _ in missed]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
        assert [(e.seq, e.data) for e in got] == [(s, f"m{s - 1}") for s in missed]

    asyncio.run(run())


def test_resume_while_publishing_has_no_gap_or_duplicate(srv):
    """Backlog hand-over and live registration are one step: a publisher racing the
    reconnect cannot make a message appear twice or never."""
    async def run():
        url = srv.url.replace("http://", "ws://")
        async with ws_connect(f"{url}/ws?topic=r-race&subscribe=0") as pub:
            async def flood():
                for i in range(300):
                    await pub.send(json.dumps({"data": f"m{i}"}))
                    if i % 50 == 0:
                        await asyncio.sleep(0)
            task = asyncio.create_task(flood())
            await asyncio.sleep(0.01)
            async with ws_connect(f"{url}/ws?topic=r-race&cursor=0") as sub:
                await task
                got = [decode_envelope(await asyncio.wait_for(sub.recv(), scaled(5))).seq
                       for _ in range(300)]
        assert got == list(range(1, 301))

    asyncio.run(run())
