"""The burst rule across workers: a stuck subscriber on one worker, a burst published on the other.

Worker B's reader waits for room on its congested topic before reading on
(Redis holds the burst), so B's good subscriber gets every message; the stuck
one is dropped as a slow consumer once --slow-grace has passed (not at once,
as a queue growing past twice its limit would be) and counted on B.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse

from _timeouts import scaled
from duplexbench.broker import scrape_workers
from duplexbench.contract import decode_envelope
from duplexbench.procs.server import ServerProcess
from _srv_helpers import recv_until
from _srv_workers import pinned_session, redis_proc, wait_workers, worker_args  # noqa: F401
from _parts import needs

pytestmark = needs("redis")  # make test installs redis-server (make setup)

MESSAGES = 150
PAYLOAD = "x" * 50_000  # 7.5 MB in all: more than socket buffers can hide


def stalled_on(base: str, pid: int, tries: int = 60) -> socket.socket:
    """A WebSocket on worker ``pid`` with a tiny receive buffer that is never read again:
    /healthz first over the same keep-alive connection to learn which worker it reached."""
    parts = urllib.parse.urlsplit(base)
    for _ in range(tries):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(scaled(5))
        sock.connect((parts.hostname, parts.port))
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        head = recv_until(sock, b"}")
        if json.loads(head[head.index(b"{"):])["pid"] == pid:
            sock.sendall((
                f"GET /ws?topic=burst HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            assert b" 101 " in recv_until(sock, b"\r\n\r\n")
            return sock
        sock.close()
    raise AssertionError(f"no connection reached worker {pid}")


def test_stuck_subscriber_on_another_worker_is_dropped_the_good_one_gets_all(redis_proc):
    with ServerProcess("all", args=worker_args(redis_proc.url, 2, "--queue-limit", "5",
                                               "--slow-grace", "1")) as srv:
        a, b = sorted(wait_workers(srv))
        slow = stalled_on(srv.url, b)

        def drops_on_b() -> float:
            return scrape_workers(srv.url, 2, timeout=scaled(10))[b].value(
                "slow_consumer_drops_total", 'transport="websocket"')

        async def watch_drop(started: float) -> float:
            while not await asyncio.to_thread(drops_on_b):
                await asyncio.sleep(0.05)
            return time.monotonic() - started

        async def main():
            good, _ = await pinned_session(srv.url, b)
            pub, _ = await pinned_session(srv.url, a)
            try:
                async with good.ws_connect(f"{srv.url}/ws?topic=burst", max_msg_size=0) as ws:
                    async def receive():
                        return [decode_envelope((await asyncio.wait_for(ws.receive(), scaled(10))).data).seq
                                for _ in range(MESSAGES)]

                    receiving = asyncio.create_task(receive())
                    dropped_after = asyncio.create_task(watch_drop(time.monotonic()))
                    for _ in range(MESSAGES):
                        async with pub.post(f"{srv.url}/publish?topic=burst", data=PAYLOAD) as r:
                            assert r.status == 200
                    return await receiving, await asyncio.wait_for(dropped_after, scaled(10))
            finally:
                await good.close()
                await pub.close()

        with slow:
            got, dropped_after = asyncio.run(asyncio.wait_for(main(), scaled(25)))
            assert got == list(range(1, MESSAGES + 1))
            assert dropped_after >= 0.9  # held for --slow-grace 1 (less the first messages)
            workers = scrape_workers(srv.url, 2, timeout=scaled(10))
            drops = {pid: m.value("slow_consumer_drops_total", 'transport="websocket"')
                     for pid, m in workers.items()}
            assert drops == {a: 0, b: 1}
