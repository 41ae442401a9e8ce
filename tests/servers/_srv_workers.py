"""Helpers for the multi-worker server tests: Redis, a 2-worker server, connections to one worker.

With SO_REUSEPORT the kernel picks the worker of each new connection, so a
test that needs a client on a given worker opens keep-alive connections
(one per aiohttp session, ``limit=1``) until ``/healthz`` on it names that
worker's pid; the session's later requests (a stream, a WebSocket upgrade)
reuse that connection, so they are served by the same worker.
"""

from __future__ import annotations

import json
import time
import urllib.request

import aiohttp
import pytest

from _timeouts import scaled
from duplexbench.broker import RedisProcess, scrape_workers
from duplexbench.procs.server import ServerProcess

__all__ = ["health", "open_connections", "pinned_session", "redis_proc", "wait_workers", "worker_args"]


def worker_args(redis_url: str, workers: int = 2, *extra: str) -> list[str]:
    return ["--workers", str(workers), "--broker", "redis", "--redis-url", redis_url,
            "--heartbeat", "1", *extra]


@pytest.fixture(scope="module")
def redis_proc():
    with RedisProcess() as redis:
        yield redis


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/healthz", timeout=scaled(5)) as response:
        return json.loads(response.read())


def wait_workers(server: ServerProcess, count: int = 2, *, exclude=(), epoch_not: str = "",
                 timeout: float = 15.0) -> dict[int, dict]:
    """{pid: healthz} once ``count`` distinct live workers (none in ``exclude``, none
    with epoch ``epoch_not``) answer; fresh connections reach random workers."""
    deadline = time.monotonic() + scaled(timeout)
    seen: dict[int, dict] = {}
    while True:
        try:
            h = health(server.url)
        except OSError:
            h = None
        if h is not None and h["pid"] not in exclude and h["epoch"] != epoch_not:
            seen[h["pid"]] = h
            live = {pid: h for pid, h in seen.items() if _alive(pid)}
            if len(live) >= count:
                return live
        assert time.monotonic() < deadline, f"workers seen: {seen}"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def pinned_session(url: str, pid: int | None = None, avoid: int | None = None,
                         tries: int = 60) -> tuple[aiohttp.ClientSession, int]:
    """A session whose one keep-alive connection is served by worker ``pid`` (any worker
    but ``avoid`` when None)."""
    for _ in range(tries):
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        try:
            async with session.get(url + "/healthz") as response:
                got = (await response.json())["pid"]
        except aiohttp.ClientError:
            await session.close()
            continue
        if (pid is None or got == pid) and got != avoid:
            return session, got
        await session.close()
    raise AssertionError(f"no connection reached worker {pid} (avoiding {avoid}) in {tries} tries")


def open_connections(url: str, workers: int = 2) -> dict[int, dict[str, float]]:
    """{pid: {transport: duplexbench_connections_open}} of every worker."""
    out = {}
    for pid, m in scrape_workers(url, workers, timeout=scaled(10)).items():
        out[pid] = {t: m.value("connections_open", f'transport="{t}"')
                    for t in ("longpoll", "sse", "ndjson", "websocket", "tcp")}
    return out
