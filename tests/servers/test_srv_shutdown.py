"""SIGTERM / SIGINT: WebSockets get Close 1001, held polls an answer, streams end; exit 0."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time

import aiohttp
import psutil
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from _timeouts import scaled
from duplexbench.serverproc import ServerProcess
from _srv_helpers import wait_metric


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown(sig):
    server = ServerProcess("all", args=["--heartbeat", "30"]).start()
    try:
        async def run():
            url = server.url.replace("http://", "ws://")
            async with aiohttp.ClientSession() as session:
                ws = await ws_connect(f"{url}/ws?topic=s")
                poll = asyncio.create_task(session.get(f"{server.url}/poll?topic=s&timeout=60"))
                stream = await session.get(f"{server.url}/stream?topic=s",
                                           headers={"Accept": "text/event-stream"})
                await asyncio.to_thread(wait_metric, server.url, "connections_open", "longpoll", 1)
                started = time.monotonic()
                server.process.send_signal(sig)

                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), scaled(5))
                assert ws.close_code == 1001
                response = await asyncio.wait_for(poll, scaled(5))
                assert response.status == 204  # answered, not dropped
                body = await asyncio.wait_for(stream.read(), scaled(5))  # ends cleanly
                assert body.startswith(b"retry:")
                stream.release()
                return time.monotonic() - started

        elapsed = asyncio.run(run())
        assert server.process.wait(scaled(10)) == 0
        assert elapsed < scaled(5)  # no one waited out a timeout
        assert not [line for line in server.output if "Traceback" in line], list(server.output)
    finally:
        server.stop()


def test_stop_leaves_no_orphan(start_server):
    server = start_server("all")
    pid = server.pid
    children = psutil.Process(pid).children(recursive=True)
    assert server.stop() == 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_shutdown_with_a_client_that_never_reads():
    """A stalled subscriber cannot hold the process: it exits 0 within the shutdown budget."""
    server = ServerProcess("all", args=["--queue-limit", "100000", "--shutdown-timeout", "2"]).start()
    host, port = server.url.split("://")[1].rsplit(":", 1)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((host, int(port)))
    stalled.sendall(b"GET /stream?topic=z HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        payload = b"x" * 100_000
        for _ in range(40):
            subprocess.run(["curl", "-s", "-o", "/dev/null", "--data-binary", "@-",
                            f"{server.url}/publish?topic=z"], input=payload, check=True,
                           timeout=scaled(10))
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(scaled(10)) == 0
        assert time.monotonic() - started < scaled(8)
    finally:
        stalled.close()
        server.stop()
