"""A worker SIGKILLed mid-stream: its clients resume on another worker, nothing lost, no reset.

Per transport, the load generator's own clients (clients.point.SUBSCRIBERS:
long polling, SSE, NDJSON, picows WebSocket, each feeding a RawLog as in a
benchmark) subscribe until some sit on each worker; a publisher pinned to one
worker publishes while the other is SIGKILLed. The killed worker's clients
reconnect (the kernel hands their new connections to a live worker) and
resume from their cursors: every subscriber ends with every seq exactly once,
in order, with no reset (the epoch is the broker's, not the worker's); the
parent has started a new worker in the dead one's place.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from _timeouts import scaled
from clients.accounting import RawLog, Samples, SubscriberLog
from clients.point import DELIMITERS, SUBSCRIBERS
from duplexbench.contract import make_payload
from duplexbench.procs.server import ServerProcess
from _srv_workers import open_connections, pinned_session, redis_proc, wait_workers, worker_args  # noqa: F401
from _parts import needs

pytestmark = needs("redis")  # make test installs redis-server (make setup)

MESSAGES = 120
#: Subscribers are added until each worker has one; at most this many (the kernel spreads
#: connections over the workers by a hash: 12 once all landed on one, beside a loaded make test).
MAX_SUBSCRIBERS = 24


@pytest.fixture(scope="module")
def srv(redis_proc):
    with ServerProcess("all", args=worker_args(redis_proc.url)) as server:
        yield server


@pytest.mark.parametrize("transport", list(SUBSCRIBERS))
def test_killed_worker_clients_resume_elsewhere_without_loss(srv, transport):
    label = {"longpoll": "longpoll", "sse": "sse", "ndjson": "ndjson", "websocket": "websocket",
             "tcp": "tcp"}[transport]
    topic = f"death-{transport}"
    workers = wait_workers(srv)

    async def main():
        publisher, keep = await pinned_session(srv.url)
        victim = next(pid for pid in workers if pid != keep)
        samples, logs, raws, subs, errors = Samples(), [], [], [], []
        extra = {"backoff": (0.02, 0.2)}
        if transport == "longpoll":
            extra["poll_timeout_s"] = 5.0
        try:
            while len(subs) < MAX_SUBSCRIBERS:
                log = SubscriberLog(len(subs), 0, samples, 0, MESSAGES)
                raw = RawLog(log, DELIMITERS.get(transport))
                sub = SUBSCRIBERS[transport](srv.url, topic, lambda *_: None, on_raw=raw,
                                             on_error=errors.append, **extra)
                await sub.start()
                logs.append(log)
                raws.append(raw)
                subs.append(sub)
                if len(subs) >= 2:
                    await asyncio.sleep(0.1)  # a long poll is held once the server has it
                    open_now = await asyncio.to_thread(open_connections, srv.url)
                    if open_now[victim][label] >= 1 and open_now[keep][label] >= 1:
                        break
            else:
                pytest.fail(f"{MAX_SUBSCRIBERS} subscribers and none on one of the workers")
            on_victim = open_now[victim][label]

            async def post(i: int) -> None:
                async with publisher.post(f"{srv.url}/publish?topic={topic}",
                                          data=make_payload(i, 32)) as r:
                    assert r.status == 200 and (await r.json())["seq"] == i + 1

            for i in range(MESSAGES):
                await post(i)
                if i == MESSAGES // 3:
                    os.kill(victim, signal.SIGKILL)
                await asyncio.sleep(0.005)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + scaled(10)
            while any(raw.highest() < MESSAGES for raw in raws):
                assert loop.time() < deadline, [raw.highest() for raw in raws]
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)  # a duplicate would arrive now
            for raw in raws:
                raw.flush()
        finally:
            for sub in subs:
                await sub.close()
            await publisher.close()
        return victim, on_victim, subs, logs, raws, samples, errors

    epoch = {h["epoch"] for h in workers.values()}
    victim, on_victim, subs, logs, raws, samples, errors = asyncio.run(
        asyncio.wait_for(main(), scaled(25)))
    # Every subscriber: every seq once, in order (lost = 0), and no reset.
    per_sub = [0] * len(logs)
    for sid in samples.subscriber:
        per_sub[sid] += 1
    assert per_sub == [MESSAGES] * len(logs), errors
    assert all(log.highest == MESSAGES and not log.gaps for log in logs)
    assert sum(log.duplicated for log in logs) == 0 and sum(log.reordered for log in logs) == 0
    assert sum(raw.resets for raw in raws) == 0, errors
    assert not [e for e in errors if "restarted" in e], errors
    assert {sub.epoch for sub in subs} == epoch and len(epoch) == 1  # the one epoch throughout
    # The killed worker's clients reconnected; the parent replaced the worker.
    assert sum(sub.stats.reconnects for sub in subs) >= on_victim >= 1, errors
    again = wait_workers(srv, exclude={victim})
    assert len(again) == 2 and victim not in again
