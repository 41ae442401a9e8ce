"""DUPLEXBENCH_INJECT_*: the deliberate regressions the regression gate must catch."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
from _srv_helpers import http, publish
from _timeouts import scaled
from websockets.asyncio.client import connect as ws_connect

from duplexbench.contract import decode_envelope, encode_envelope
from duplexbench.contract.longpoll import decode_batch


def test_pad_grows_every_envelope_by_exactly_n(start_server):
    server = start_server("all", env={"DUPLEXBENCH_INJECT_PAD_BYTES": "50"})
    assert json.loads(http(server.url + "/healthz")[2])["inject"] == {"delay_ms": 0.0, "pad_bytes": 50,
                                                                  "cpu_us": 0}

    async def run():
        url = server.url.replace("http://", "ws://")
        async with ws_connect(f"{url}/ws?topic=p") as ws, aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/stream?topic=p") as nd:
                await asyncio.sleep(0.1)
                publish(server.url, "p", "hello", ts=123)
                return (await ws.recv()).encode(), (await nd.content.readline()).rstrip(b"\n")

    ws_body, nd_body = asyncio.run(run())
    _, _, poll_body = http(server.url + "/poll?topic=p&cursor=0")
    plain = encode_envelope(1, "p", 123, "hello")
    for body in (ws_body, nd_body, poll_body[1:-1]):
        assert len(body) == len(plain) + 50
        assert body.startswith(plain[:-1] + b',"pad":"xxx')
        assert decode_envelope(body) == decode_envelope(plain)
    assert decode_batch(poll_body)[0].data == "hello"


def test_pad_minimum_is_documented_and_enforced():
    done = subprocess.run([sys.executable, "-m", "servers", "--port", "0"], capture_output=True,
                          text=True, env={"DUPLEXBENCH_INJECT_PAD_BYTES": "5", "PATH": ""},
                          timeout=scaled(20))
    assert done.returncode == 2 and "at least 9" in done.stderr


@pytest.mark.parametrize("value", ["abc", "-5", "inf"])
def test_bad_delay_is_refused(value):
    done = subprocess.run([sys.executable, "-m", "servers", "--port", "0"], capture_output=True,
                          text=True, env={"DUPLEXBENCH_INJECT_DELAY_MS": value}, timeout=scaled(20))
    assert done.returncode == 2 and "DUPLEXBENCH_INJECT_DELAY_MS" in done.stderr


def test_delay_adds_n_ms_to_each_message_on_every_transport(start_server):
    delay = 0.2
    server = start_server("all", env={"DUPLEXBENCH_INJECT_DELAY_MS": "200"})
    assert json.loads(http(server.url + "/healthz")[2])["inject"]["delay_ms"] == 200.0

    async def run():
        url = server.url.replace("http://", "ws://")
        async with ws_connect(f"{url}/ws?topic=d") as ws, aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/stream?topic=d") as nd, \
                       session.get(f"{server.url}/stream?topic=d",
                                   headers={"Accept": "text/event-stream"}) as sse:
                await sse.content.readuntil(b"\n\n")  # retry:
                poll = asyncio.create_task(session.get(f"{server.url}/poll?topic=d&cursor=0&timeout=5"))
                await asyncio.sleep(0.2)
                latencies = {}
                for i in range(3):  # back to back: each one late by ~N, not N times i
                    sent = time.monotonic()
                    async with session.post(f"{server.url}/publish?topic=d", data=f"m{i}") as r:
                        assert r.status == 200
                got = []
                for _ in range(3):
                    got.append((decode_envelope(await ws.recv()).data, time.monotonic()))
                latencies["websocket"] = got[0][1] - sent
                await nd.content.readline()
                latencies["ndjson"] = time.monotonic() - sent
                await sse.content.readuntil(b"\n\n")
                latencies["sse"] = time.monotonic() - sent
                response = await poll
                assert response.status == 200
                latencies["longpoll"] = time.monotonic() - sent
                return latencies, [data for data, _ in got]

    latencies, order = asyncio.run(run())
    assert order == ["m0", "m1", "m2"]
    # A lower bound only (never assert speed): every transport waited at least N.
    for transport, latency in latencies.items():
        assert latency >= delay * 0.9, (transport, latency)
