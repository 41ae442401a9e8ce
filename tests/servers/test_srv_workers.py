"""Two workers behind Redis (``--workers 2 --broker redis``) are one server to their clients.

Subscribers on both workers get every message once and in order, whichever
worker it was published on; a cursor issued by one worker resumes on the
other (at once: read-your-writes); the epoch is Redis's, the same on both and
across a worker's restart; a broker-data loss (FLUSHALL) is a new epoch and a
reset. Subscribers are placed on a given worker by pinning their connection
(_srv_workers.pinned_session) and the placement is checked in each worker's
/metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import aiohttp
import psutil
import pytest
import redis

from _timeouts import scaled
from duplexbench.broker import scrape_workers
from duplexbench.contract import Envelope, decode_envelope, decode_message
from duplexbench.contract.longpoll import decode_batch
from duplexbench.contract.sse import SSEParser
from duplexbench.procs.server import ServerProcess
from _srv_helpers import http, publish
from _srv_workers import (health, open_connections, pinned_session, redis_proc,  # noqa: F401
                          wait_workers, worker_args)


@pytest.fixture(scope="module")
def srv(redis_proc):
    with ServerProcess("all", args=worker_args(redis_proc.url)) as server:
        yield server


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, scaled(timeout)))


def test_start_line_healthz_and_metrics_per_worker(srv):
    assert "workers: 2, broker: redis" in srv.output[0]
    workers = wait_workers(srv)
    assert set(workers) == {c.pid for c in psutil.Process(srv.pid).children()}
    assert sorted(h["worker"] for h in workers.values()) == [0, 1]
    assert {h["epoch"] for h in workers.values()} == {health(srv.url)["epoch"]}
    assert all(h["workers"] == 2 and h["broker"] == "redis" for h in workers.values())
    scraped = scrape_workers(srv.url, 2, timeout=scaled(10))
    assert set(scraped) == set(workers)
    for pid, m in scraped.items():
        assert m.worker == workers[pid]["worker"]
        assert m.histogram("broker_transit_seconds").buckets[-1][0] == float("inf")


async def _sse(session, url, topic, n, out):
    parser = SSEParser()
    async with session.get(f"{url}/stream?topic={topic}&cursor=0",
                           headers={"Accept": "text/event-stream"}) as response:
        assert response.status == 200
        out.append("ready")
        while len(out) - 1 < n:
            chunk = await response.content.readany()
            assert chunk, "stream ended early"
            out += [decode_envelope(e.data) for e in parser.feed(chunk) if e.data]


async def _ndjson(session, url, topic, n, out):
    async with session.get(f"{url}/stream?topic={topic}&cursor=0") as response:
        assert response.status == 200
        out.append("ready")
        while len(out) - 1 < n:
            line = await response.content.readline()
            assert line, "stream ended early"
            if line.strip():
                out.append(decode_envelope(line))


async def _ws(session, url, topic, n, out):
    async with session.ws_connect(f"{url}/ws?topic={topic}&cursor=0") as ws:
        out.append("ready")
        while len(out) - 1 < n:
            out.append(decode_envelope((await ws.receive()).data))


async def _poll(session, url, topic, n, out):
    cursor = "0"
    out.append("ready")
    while len(out) - 1 < n:
        async with session.get(f"{url}/poll?topic={topic}&cursor={cursor}&timeout=5") as r:
            if r.status == 200:
                batch = decode_batch(await r.read())
                out += batch
                cursor = f"{r.headers['Duplexbench-Epoch']}-{batch[-1].seq}"


def test_every_message_once_in_order_on_both_workers(srv):
    topic, n = "both", 60
    pids = sorted(wait_workers(srv))

    async def main():
        readers, sessions, outs = [], [], []
        for pid in pids:
            for kind in (_sse, _ndjson, _ws, _poll):
                session, _ = await pinned_session(srv.url, pid)
                sessions.append(session)
                outs.append([])
                readers.append(asyncio.create_task(kind(session, srv.url, topic, n, outs[-1])))
        pub = [await pinned_session(srv.url, pid) for pid in pids]
        sessions += [s for s, _ in pub]
        try:
            while not all(out for out in outs):
                await asyncio.sleep(0.01)
            # Every subscriber is where it was put (the long polls: held, or between polls).
            connections = await asyncio.to_thread(open_connections, srv.url)
            for pid in pids:
                assert {t: connections[pid][t] for t in ("sse", "ndjson", "websocket")} == \
                    {"sse": 1, "ndjson": 1, "websocket": 1}, connections

            async def publisher(session, name):  # both workers publish at once
                for i in range(n // 2):
                    async with session.post(f"{srv.url}/publish?topic={topic}",
                                            data=f"{name}{i}") as r:
                        assert r.status == 200

            await asyncio.gather(*(publisher(s, f"w{k}-") for k, (s, _) in enumerate(pub)))
            await asyncio.wait_for(asyncio.gather(*readers), scaled(10))
        finally:
            for task in readers:
                task.cancel()
            for session in sessions:
                await session.close()
        return [out[1:] for out in outs]

    received = run(main())
    first = received[0]
    assert [e.seq for e in first] == list(range(1, n + 1))
    assert all(r == first for r in received), "subscribers disagree on order or content"
    data = [e.data for e in first]
    for name in ("w0-", "w1-"):  # each publisher's messages in its order
        assert [d for d in data if d.startswith(name)] == [f"{name}{i}" for i in range(n // 2)]


def test_cursor_from_one_worker_resumes_on_the_other(srv):
    topic = "resume"
    a, b = sorted(wait_workers(srv))

    async def main():
        sa, _ = await pinned_session(srv.url, a)
        sb, _ = await pinned_session(srv.url, b)
        try:
            seqs = []
            for i in range(40):  # read-your-writes: publish on A, read at once on B
                async with sa.post(f"{srv.url}/publish?topic={topic}", data=f"m{i}") as r:
                    seq = (await r.json())["seq"]
                    epoch = r.headers["Duplexbench-Epoch"]
                async with sb.get(f"{srv.url}/poll?topic={topic}&cursor={epoch}-{seq - 1}"
                                  "&timeout=5") as r:
                    assert r.status == 200, await r.text()
                    assert [e.seq for e in decode_batch(await r.read())] == [seq]
                async with sb.get(f"{srv.url}/poll?topic={topic}&cursor={epoch}-{seq}"
                                  "&timeout=0") as r:
                    assert r.status == 204  # not 400 "ahead": B knows seq already
                seqs.append(seq)
            assert seqs == list(range(1, 41))
            # A stream cut on A resumes on B with its Last-Event-ID.
            async with sa.get(f"{srv.url}/stream?topic={topic}&cursor={epoch}-35",
                              headers={"Accept": "text/event-stream"}) as r:
                parser, ids = SSEParser(), []
                while len(ids) < 5:
                    ids += [e.id for e in parser.feed(await r.content.readany()) if e.data]
            async with sb.post(f"{srv.url}/publish?topic={topic}", data="on b") as r:
                assert (await r.json())["seq"] == 41
            async with sb.get(f"{srv.url}/stream?topic={topic}",
                              headers={"Accept": "text/event-stream", "Last-Event-ID": ids[2]}) as r:
                parser, events = SSEParser(), []
                while len(events) < 3:
                    events += [e for e in parser.feed(await r.content.readany()) if e.data]
            return ids, events
        finally:
            await sa.close()
            await sb.close()

    ids, events = run(main())
    epoch = ids[0].split("-")[0]
    assert ids == [f"{epoch}-{s}" for s in range(36, 41)]
    assert [e.id for e in events] == [f"{epoch}-{s}" for s in (39, 40, 41)]
    assert decode_envelope(events[-1].data).data == "on b"


def test_epoch_is_the_same_and_survives_a_worker_restart(srv):
    topic = "restart"
    workers = wait_workers(srv)
    epoch = {h["epoch"] for h in workers.values()}.pop()
    for i in range(5):
        publish(srv.url, topic, f"m{i}")
    victim = next(iter(workers))
    os.kill(victim, signal.SIGKILL)
    again = wait_workers(srv, exclude={victim})  # the parent started a new one
    assert len(again) == 2 and victim not in again
    assert {h["epoch"] for h in again.values()} == {epoch}
    new = next(pid for pid in again if pid not in workers)

    async def main():
        session, _ = await pinned_session(srv.url, new)
        try:
            async with session.get(f"{srv.url}/poll?topic={topic}&cursor={epoch}-2") as r:
                return r.status, r.headers["Duplexbench-Epoch"], decode_batch(await r.read())
        finally:
            await session.close()

    status, header, batch = run(main())
    assert status == 200 and header == epoch
    assert [e.data for e in batch] == ["m2", "m3", "m4"]


def test_the_same_bytes_on_every_worker(srv):
    topic = "bytes"
    publish(srv.url, topic, "héllo ✓", ts=2**60)
    bodies = set()
    for _ in range(20):  # fresh connections: both workers answer some
        bodies.add(http(f"{srv.url}/poll?topic={topic}&cursor=0")[2])
    assert bodies == {b'[{"seq":1,"topic":"bytes","ts":%d,"data":"h\xc3\xa9llo \xe2\x9c\x93"}]' % 2**60}


def test_broker_data_loss_is_a_new_epoch_and_a_reset(redis_proc, start_server):
    server = start_server("all", args=worker_args(redis_proc.url))
    topic = "loss"
    before = wait_workers(server)
    old = health(server.url)["epoch"]
    for i in range(3):
        publish(server.url, topic, f"old{i}")
    redis.Redis.from_url(redis_proc.url).flushall()
    after = wait_workers(server, exclude=set(before), epoch_not=old, timeout=20)
    new = {h["epoch"] for h in after.values()}
    assert len(new) == 1 and old not in new
    new = new.pop()
    assert publish(server.url, topic, "new0") == 1  # seq starts over in the new epoch
    for _ in range(6):  # whichever worker answers: a reset to the new epoch
        status, headers, body = http(f"{server.url}/poll?topic={topic}&cursor={old}-3")
        assert status == 410 and headers["Duplexbench-Epoch"] == new
        reset = decode_message(body)
        assert (reset.epoch, reset.cursor, reset.last_seq) == (new, f"{new}-0", 1)
    status, _, body = http(f"{server.url}/poll?topic={topic}&cursor={new}-0")
    assert [e.data for e in decode_batch(body)] == ["new0"]

    async def ndjson():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/stream?topic={topic}&cursor={old}-3") as r:
                return [await asyncio.wait_for(r.content.readline(), scaled(5)) for _ in range(2)]

    lines = run(ndjson())
    assert decode_message(lines[0]).epoch == new
    assert decode_message(lines[1]) == Envelope(1, topic, decode_envelope(lines[1]).ts, "new0")


def test_one_process_server_is_unchanged(start_server):
    server = start_server("all")
    assert list(health(server.url)) == ["status", "transports", "inject", "pid", "epoch", "tcp_port"]
    text = http(server.url + "/metrics")[2].decode()
    assert "worker_info" not in text and "duplexbench_broker_" not in text
    assert "workers:" not in server.output[0]


def test_bad_options_and_unreachable_redis_exit_clearly():
    def serve(*args):
        return subprocess.run([sys.executable, "-m", "servers", "--port", "0", *args],
                              capture_output=True, text=True, timeout=scaled(30))

    done = serve("--workers", "2")
    assert done.returncode == 2 and "--workers 2 needs --broker redis" in done.stderr
    done = serve("--broker", "redis")
    assert done.returncode == 2 and "--redis-url" in done.stderr
    with __import__("socket").socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
        done = serve("--workers", "2", "--broker", "redis", "--redis-url", dead)
    assert done.returncode == 1 and "broker unavailable" in done.stderr, done.stderr


def test_stop_leaves_no_process(redis_proc):
    server = ServerProcess("all", args=worker_args(redis_proc.url, 3)).start()
    try:
        children = psutil.Process(server.pid).children(recursive=True)
        assert len(wait_workers(server, 3)) == 3
    finally:
        code = server.stop()
    assert code == 0
    gone, alive = psutil.wait_procs(children, timeout=scaled(5))
    assert not alive


def test_workers_die_with_a_killed_parent(redis_proc):
    server = ServerProcess("all", args=worker_args(redis_proc.url)).start()
    try:
        workers = [psutil.Process(pid) for pid in wait_workers(server)]
        os.kill(server.pid, signal.SIGKILL)  # no handler runs: PR_SET_PDEATHSIG does it
        gone, alive = psutil.wait_procs(workers, timeout=scaled(5))
        assert not alive
    finally:
        server.stop()


def test_redis_down_is_503_and_its_restart_a_new_epoch(start_server):
    from duplexbench.broker import RedisProcess

    first = RedisProcess().start()
    port = first.port
    try:
        server = start_server("all", args=worker_args(first.url))
        before = wait_workers(server)
        old = health(server.url)["epoch"]
        publish(server.url, "down", "m0")
        first.stop()
        for _ in range(4):  # whichever worker answers: a clear 503, never a 500
            status, _, body = http(f"{server.url}/publish?topic=down", "POST", b"m1")
            assert status == 503 and "broker unavailable" in json.loads(body)["error"]
            status, _, body = http(f"{server.url}/poll?topic=down-new&timeout=0")
            assert status == 503
        first = RedisProcess(port=port).start()  # empty: its data (and epoch) are gone
        after = wait_workers(server, exclude=set(before), epoch_not=old, timeout=20)
        assert len({h["epoch"] for h in after.values()}) == 1
        assert publish(server.url, "down", "m1") == 1
    finally:
        first.stop()
