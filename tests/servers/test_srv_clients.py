"""Clients written by others against the running server: aiohttp, websockets, curl."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time

import aiohttp
import pytest
from _srv_helpers import http, publish, wait_metric
from _timeouts import scaled
from websockets.asyncio.client import connect as ws_connect

from duplexbench.contract import decode_envelope
from duplexbench.contract.longpoll import decode_batch
from duplexbench.contract.sse import SSEParser
from duplexbench.contract.websocket import encode_publish
from duplexbench.procs.server import ServerProcess


@pytest.fixture(scope="module")
def srv():
    with ServerProcess("all", args=["--heartbeat", "1"]) as server:
        yield server


def test_healthz(srv):
    status, headers, body = http(srv.url + "/healthz")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["transports"] == ["longpoll", "stream", "websocket", "tcp"]
    assert health["inject"] == {"delay_ms": 0.0, "pad_bytes": 0, "cpu_us": 0}
    assert isinstance(health["tcp_port"], int)
    assert health["pid"] == srv.pid
    assert re.fullmatch(r"[a-z0-9]{1,16}", health["epoch"])
    assert headers["Duplexbench-Epoch"] == health["epoch"]


def test_aiohttp_longpoll_sse_ndjson(srv):
    async def run():
        async with aiohttp.ClientSession() as session:
            base = srv.url
            # Held poll answered by a publish; no cursor = only new messages.
            publish(base, "c1", "old")
            poll = asyncio.create_task(session.get(f"{base}/poll?topic=c1&timeout=10"))
            await asyncio.to_thread(wait_metric, base, "connections_open", "longpoll", 1)
            async with session.post(f"{base}/publish?topic=c1&ts=42", data="new") as r:
                assert r.status == 200 and await r.json() == {"seq": 2}
            response = await poll
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-cache"
            batch = decode_batch(await response.read())
            assert [(e.seq, e.ts, e.data) for e in batch] == [(2, 42, "new")]
            # Nothing new: 204 after the timeout.
            async with session.get(f"{base}/poll?topic=c1&cursor=2&timeout=0.2") as r:
                assert r.status == 204 and r.headers["Cache-Control"] == "no-cache"

            async with session.get(f"{base}/stream?topic=c1&cursor=0",
                                   headers={"Accept": "text/event-stream"}) as sse, \
                       session.get(f"{base}/stream?topic=c1&cursor=1") as nd:
                assert sse.headers["Content-Type"] == "text/event-stream"
                assert nd.headers["Content-Type"] == "application/x-ndjson"
                publish(base, "c1", "third")
                parser, events = SSEParser(), []
                while len([e for e in events if e.id]) < 3:
                    events += parser.feed(await sse.content.readany())
                assert events[0].retry is not None
                assert [decode_envelope(e.data).seq for e in events if e.id] == [1, 2, 3]
                lines = []
                while len(lines) < 2:
                    lines.append(await nd.content.readline())
                assert [decode_envelope(line).seq for line in lines] == [2, 3]
                # Heartbeats keep an idle stream talking (--heartbeat 1).
                assert await asyncio.wait_for(nd.content.readline(), scaled(3)) == b"\n"

    asyncio.run(run())


def test_aiohttp_websocket_full_duplex(srv):
    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(srv.url + "/ws?topic=c2") as ws:
                await ws.send_str(encode_publish("hi", 99))
                env = decode_envelope((await ws.receive(timeout=scaled(5))).data)
                assert (env.seq, env.topic, env.ts, env.data) == (1, "c2", 99, "hi")
                publish(srv.url, "c2", "from post")
                assert decode_envelope((await ws.receive(timeout=scaled(5))).data).data == "from post"

    asyncio.run(run())


def test_websockets_library_client(srv):
    async def run():
        url = srv.url.replace("http://", "ws://")
        async with ws_connect(f"{url}/ws?topic=c3") as sub, \
                   ws_connect(f"{url}/ws?topic=c3&subscribe=0") as pub:
            for i in range(20):
                await pub.send(encode_publish(f"m{i}", i))
            got = [decode_envelope(await asyncio.wait_for(sub.recv(), scaled(5))) for _ in range(20)]
            assert [(e.seq, e.data, e.ts) for e in got] == [(i + 1, f"m{i}", i) for i in range(20)]
            # The publish-only socket receives nothing.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pub.recv(), 0.3)
            await sub.ping(b"abc")  # answered, else the close below would fail
        assert sub.close_code == 1000

    asyncio.run(run())


def test_curl_longpoll_and_sse(srv):
    for i in range(3):
        publish(srv.url, "c4", f"d{i}", ts=i)
    done = subprocess.run(
        ["curl", "-s", "-i", "--max-time", "10", f"{srv.url}/poll?topic=c4&cursor=1&max=5"],
        capture_output=True, timeout=scaled(15), check=True,
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Cache-Control: no-cache" in head
    assert [e.seq for e in decode_batch(body)] == [2, 3]

    curl = subprocess.Popen(
        ["curl", "-s", "-N", "--max-time", "10", "-H", "Accept: text/event-stream",
         "-H", "Last-Event-ID: 2", f"{srv.url}/stream?topic=c4"],
        stdout=subprocess.PIPE,
    )
    try:
        time.sleep(0.3)
        publish(srv.url, "c4", "live")
        parser, ids = SSEParser(), []
        deadline = time.monotonic() + scaled(5)
        while len(ids) < 2 and time.monotonic() < deadline:
            ids += [e.id for e in parser.feed(curl.stdout.read1(65536)) if e.id]
        epoch = json.loads(http(srv.url + "/healthz")[2])["epoch"]
        assert ids == [f"{epoch}-3", f"{epoch}-4"]  # a legacy Last-Event-ID gets E-N ids back
    finally:
        curl.kill()
        curl.wait()
