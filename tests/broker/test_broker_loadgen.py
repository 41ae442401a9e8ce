"""The native load generator against two workers behind Redis: it just sees a server.

``python -m clients.loadgen`` on every transport delivers every message with
nothing lost, no reset; each worker's /metrics counts, in
``duplexbench_broker_transit_seconds``, every message it read back from Redis
(the latency split at the broker the harness reports per point).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from _timeouts import scaled
from clients.spec import LoadSpec
from duplexbench.broker import RedisProcess, scrape_workers
from duplexbench.procs.server import ServerProcess
from _parts import needs

pytestmark = needs("redis")  # make test installs redis-server (make setup)


@pytest.fixture(scope="module")
def server():
    with RedisProcess() as redis:
        with ServerProcess("all", args=["--workers", "2", "--broker", "redis",
                                        "--redis-url", redis.url, "--heartbeat", "1"]) as srv:
            yield srv


def _run(command: list[str], tmp_path) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, timeout=scaled(60),
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((tmp_path / "out").glob("*.log")))
    assert done.returncode == 0, done.stderr[-3000:] + logs
    return json.loads((tmp_path / "out" / "counters.json").read_text())


def _transits(url: str) -> float:
    return sum(m.histogram("broker_transit_seconds").count
               for m in scrape_workers(url, 2, timeout=scaled(10)).values())


@pytest.mark.parametrize("transport", ["longpoll", "sse", "ndjson", "websocket"])
def test_native_engine_delivers_everything(server, tmp_path, transport):
    spec = LoadSpec(transport=transport, sub_url=server.url, clients=6, topics=2, rate=60.0,
                    warmup_s=0.3, duration_s=1.0, drain_s=0.5,
                    topic_prefix=f"w-{transport}-{time.monotonic_ns()}")
    (tmp_path / "SPEC.json").write_text(spec.to_json())
    before = _transits(server.url)
    counters = _run([sys.executable, "-m", "clients.loadgen", str(tmp_path / "SPEC.json"),
                     str(tmp_path / "out")], tmp_path)
    assert counters["delivered"] == counters["expected"] > 0
    assert counters["lost"] == 0 and counters["duplicated"] == 0 and counters["reordered"] == 0
    assert counters["resets"] == 0 and counters["errors"] == 0
    # Each message was read back from Redis at least once (by a worker following its topic).
    assert _transits(server.url) - before >= counters["published"]
