"""SIGTERM / SIGINT: WebSockets get Close 1001, held polls an answer, streams end; exit 0."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import signal
import socket
import subprocess
import time

import aiohttp
import psutil
import pytest
from _srv_helpers import raw_connect, wait_metric
from _timeouts import scaled
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from duplexbench.procs.server import ServerProcess


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


def test_sigterm_flushes_what_was_acknowledged():
    """Subscribers that stopped reading hold queued messages when SIGTERM comes; once
    they read again they get every acknowledged message, then the end (1001 / last chunk)."""
    from test_srv_fanout import read_all, stalled, ws_seqs

    # The flush is judged, not its speed: a budget a busy machine cannot exceed.
    server = ServerProcess("all", args=["--queue-limit", "100000",
                                        "--shutdown-timeout", str(scaled(30))]).start()
    try:
        host = server.url.split("://")[1]
        ws_sock, ws_rest = stalled(server.url, (
            f"GET /ws?topic=f HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        nd_sock, nd_rest = stalled(server.url, f"GET /stream?topic=f HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        count = 2000  # 8 MB: more than kernel socket buffers hold, so the server queues
        body = b"q" * 4000
        request = (f"POST /publish?topic=f HTTP/1.1\r\nHost: {host}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        with raw_connect(server.url, timeout=30) as publisher:
            publisher.sendall(request * count)
            acks = b""
            while acks.count(b"HTTP/1.1 200 ") < count:  # each one acknowledged before the signal
                chunk = publisher.recv(1 << 20)
                assert chunk
                acks += chunk
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # the server is flushing; the clients start reading only now
        with ws_sock, nd_sock, concurrent.futures.ThreadPoolExecutor(2) as pool:
            # Both read at once: the flush waits for every subscriber before anyone's Close.
            ws_read = pool.submit(read_all, ws_sock, ws_rest, lambda d: b"\x03\xe9server shutdown" in d)
            nd_read = pool.submit(read_all, nd_sock, nd_rest, lambda d: d.endswith(b"0\r\n\r\n"))
            data = ws_read.result()
            assert ws_seqs(data[: data.rindex(b"\x88")]) == list(range(1, count + 1))  # then Close 1001
            data = nd_read.result()
            lines = [line for line in b"".join(data.split(b"\r\n")[1::2]).split(b"\n") if line.strip()]
            assert [json.loads(line)["seq"] for line in lines] == list(range(1, count + 1))
        assert server.process.wait(scaled(10)) == 0
    finally:
        server.stop()
