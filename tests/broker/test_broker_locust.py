"""The Locust engine against two workers behind Redis, unchanged: it just sees a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from _timeouts import scaled
from duplexbench.broker import RedisProcess
from duplexbench.runner.generator import make_spec
from duplexbench.scenario import parse_scenario
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


@pytest.mark.parametrize("transport", ["longpoll", "websocket"])
def test_locust_engine_delivers_everything(server, tmp_path, transport):
    scenario = parse_scenario({
        "name": "locust-workers", "transports": [transport], "pattern": "fanout",
        "clients": [4], "rate": [40], "payload_bytes": [64], "topics": 2,
        "warmup_s": 0.5, "duration_s": 1.0, "drain_s": 1.0,
    })
    spec = make_spec(scenario, scenario.points()[0], sub_url=server.url, pub_url=server.url,
                     topic_prefix=f"lw-{time.monotonic_ns()}")
    (tmp_path / "spec.json").write_text(spec.to_json())
    counters = _run([sys.executable, "-m", "duplexbench.engines.locust", str(tmp_path / "spec.json"),
                     str(tmp_path / "out"), "--workers", "2"], tmp_path)
    assert counters["engine"] == "locust"
    assert counters["delivered"] == counters["expected"] > 0
    assert counters["lost"] == 0 and counters["errors"] == 0 and counters["duplicated"] == 0
