"""kill-worker: one worker of a server behind Redis SIGKILLed mid-point; nothing lost, no reset.

The driver against a real 2-worker server (the worker holding the most sockets dies, the
server keeps answering, its parent starts a new worker), then the whole harness on a tiny
scenario: subscribers of every killed worker's transport reconnect to the other worker and
resume from their cursors, lost = 0, resets = 0, recovery reported.
"""

from __future__ import annotations

import json
import time
import urllib.request

import psutil
import pytest

from duplexbench.broker import RedisProcess
from duplexbench.commands import run as run_command
from duplexbench.faults import FaultOptions
from duplexbench.faults.driver import FaultDriver
from duplexbench.measure.results import load_run
from duplexbench.procs.server import ServerProcess
from duplexbench.runner import loop
from tests._scenarios import tiny_scenario
from tests._timeouts import scaled


def _health(url: str) -> dict:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
        return json.loads(response.read())


def test_the_driver_kills_the_busiest_worker_and_the_server_goes_on():
    with RedisProcess() as redis, ServerProcess(
            "all", args=["--workers", "2", "--broker", "redis", "--redis-url", redis.url]) as server:
        workers = {w.pid for w in psutil.Process(server.pid).children()}
        assert len(workers) == 2
        driver = FaultDriver("kill-worker", FaultOptions(kind=("kill-worker",), at_s=0.1), server)
        try:
            driver.start()
            driver.on_phase("measure")
            deadline = time.monotonic() + scaled(20)
            while time.monotonic() < deadline and "new_pid" not in (driver.events or [{}])[-1]:
                time.sleep(0.05)
            event, = driver.events
            assert event["worker_pid"] in workers and event["workers"] == 2
            assert event["fault_ns"] <= event["down_ns"] == event["up_ns"]
            assert event["new_pid"] not in workers and event["respawn_s"] < scaled(10)
            assert not psutil.pid_exists(event["worker_pid"]) or \
                psutil.Process(event["worker_pid"]).status() == psutil.STATUS_ZOMBIE
            assert driver.server_failed() is None  # the parent never went down
            assert _health(server.url)["workers"] == 2
        finally:
            driver.close()


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_resets_no_one(tmp_path):
    scenario = tmp_path / "kill.toml"
    scenario.write_text(tiny_scenario(
        "kill", transports=["longpoll", "websocket"], clients=8, rate=50.0, warmup_s=0.5,
        duration_s=4.0, drain_s=1.0,
        tables={"server": {"workers": 2, "broker": "redis"},
                "faults": {"kind": "kill-worker", "at_s": 1.0, "reconnect_min_s": 0.05,
                           "reconnect_max_s": 1.0}}))
    out = tmp_path / "run"
    code = run_command.main([str(scenario), "--out", str(out), "--no-report", "--quiet"])
    summary = load_run(out).summary
    shown = summary[["transport", "status", "lost", "resets", "unrecovered", "recovery_s_max",
                     "warnings"]].to_string()
    assert code == loop.EXIT_OK, shown
    assert list(summary["fault"]) == ["kill-worker", "kill-worker"]
    assert (summary["status"] == "ok").all(), shown
    assert (summary["lost"] == 0).all() and (summary["resets"] == 0).all(), shown
    assert (summary["unrecovered"] == 0).all() and (summary["recovery_s_max"] < 4).all(), shown
    assert (summary["delivered"] == summary["expected"]).all(), shown
    assert (summary["workers"] == 2).all() and (summary["worker_restarts"] == 1).all(), shown
    meta = json.loads((out / "meta.json").read_text())
    for fault in meta["faults"]:
        event, = fault["events"]
        assert event["worker_sockets"] > 0 and event["new_pid"] != event["worker_pid"]
