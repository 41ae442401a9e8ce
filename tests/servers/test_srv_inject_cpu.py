"""DUPLEXBENCH_INJECT_CPU_US=N: the server spends N us of CPU per delivered message, on every
transport, on both stacks (aiohttp and the Node reference).

Correctness of the injection, not a speed target: the same small fixed load is run against a
server with N = 0 and one with N, side by side, and the server's CPU per delivered message
(``/proc/PID/task/*/schedstat``, first field: ns on a CPU) must rise by at least N / 2. Long
polling answers carrying k messages pay k x N (the load polls a backlog of M messages at once).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect as ws_connect

from _srv_helpers import http
from _timeouts import scaled
from duplexbench.contract.tcp import encode_subscribe
from duplexbench.procs.server import ServerProcess
from duplexbench.benchmarks.stacks import NodeServerProcess, node_unavailable

CPU_US = 1000  # large beside the cost of a delivery (tens of us), small for the test's time
SUBSCRIBERS = 4
MESSAGES = 20
TRANSPORTS = ("longpoll", "ndjson", "websocket", "tcp")
_NODE = node_unavailable()


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far (ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            pass  # a thread that just ended
    return total


async def deliver(base: str, transport: str, topic: str) -> int:
    """SUBSCRIBERS subscribers, MESSAGES published; returns the deliveries (all checked)."""
    async with aiohttp.ClientSession() as session:
        async def publish_all() -> None:
            for i in range(MESSAGES):
                async with session.post(f"{base}/publish?topic={topic}", data=f"{i}:x") as r:
                    assert r.status == 200
        if transport == "longpoll":  # a backlog: each answer carries all MESSAGES (k x N)
            await publish_all()
            for _ in range(SUBSCRIBERS):
                async with session.get(f"{base}/poll?topic={topic}&cursor=0&max={MESSAGES}") as r:
                    assert len(json.loads(await r.read())) == MESSAGES
            return SUBSCRIBERS * MESSAGES
        if transport == "ndjson":
            streams = [await session.get(f"{base}/stream?topic={topic}") for _ in range(SUBSCRIBERS)]
            await publish_all()
            for stream in streams:
                lines = [await stream.content.readline() for _ in range(MESSAGES)]
                assert all(b'"seq"' in line for line in lines)
                stream.close()
            return SUBSCRIBERS * MESSAGES
        if transport == "websocket":
            url = base.replace("http://", "ws://")
            sockets = [await ws_connect(f"{url}/ws?topic={topic}") for _ in range(SUBSCRIBERS)]
            await publish_all()
            for ws in sockets:
                frames = [await ws.recv() for _ in range(MESSAGES)]
                assert all('"seq"' in frame for frame in frames)
                await ws.close()
            return SUBSCRIBERS * MESSAGES
        port = json.loads(http(base + "/healthz")[2])["tcp_port"]
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(SUBSCRIBERS)]
        for _, writer in conns:
            writer.write(encode_subscribe(topic))
        for reader, _ in conns:
            assert b'"hello"' in await reader.readline()
        await publish_all()
        for reader, writer in conns:
            lines = [await reader.readline() for _ in range(MESSAGES)]
            assert all(b'"seq"' in line for line in lines)
            writer.close()
        return SUBSCRIBERS * MESSAGES


def per_delivery_us(server, transport: str) -> float:
    async def run() -> tuple[int, int]:
        # A warm-up round first (imports, caches, first connections), then the measured one.
        await deliver(server.url, transport, f"warm-{transport}")
        before = cpu_ns(server.pid)
        count = await deliver(server.url, transport, f"cpu-{transport}")
        return cpu_ns(server.pid) - before, count

    spent, count = asyncio.run(asyncio.wait_for(run(), scaled(30)))
    return spent / count / 1000


@pytest.mark.parametrize("stack", [
    "python", pytest.param("node", marks=pytest.mark.skipif(_NODE is not None, reason=f"Node: {_NODE}")),
])
def test_cpu_per_delivery_rises_by_n_on_every_transport(stack):
    kind = ServerProcess if stack == "python" else NodeServerProcess
    costs: dict[int, dict[str, float]] = {}
    for n in (0, CPU_US):
        with kind("all", env={**os.environ, "DUPLEXBENCH_INJECT_CPU_US": str(n)}) as server:
            assert json.loads(http(server.url + "/healthz")[2])["inject"]["cpu_us"] == n
            costs[n] = {t: per_delivery_us(server, t) for t in TRANSPORTS}
    for transport in TRANSPORTS:
        extra = costs[CPU_US][transport] - costs[0][transport]
        assert extra >= 0.5 * CPU_US, (stack, transport, costs)


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", "1000001"])
def test_bad_cpu_us_is_refused(value):
    done = subprocess.run([sys.executable, "-m", "servers", "--port", "0"], capture_output=True,
                          text=True, env={**os.environ, "DUPLEXBENCH_INJECT_CPU_US": value},
                          timeout=scaled(20))
    assert done.returncode == 2 and "DUPLEXBENCH_INJECT_CPU_US" in done.stderr
