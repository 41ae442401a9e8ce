"""The fault driver against real server processes: same port, new process, nothing left over."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from urllib.parse import urlsplit

import psutil
import pytest

from duplexbench.faults import FaultOptions
from duplexbench.faults.driver import FaultDriver
from duplexbench.procs.server import ServerProcess
from tests._timeouts import scaled


def _health(url: str) -> dict:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
        return json.loads(response.read())


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + scaled(seconds)
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("kind, code", [("restart-sigterm", 0), ("restart-sigkill", -signal.SIGKILL)])
def test_restart_brings_a_new_process_up_on_the_same_port(kind, code):
    first = ServerProcess("all").start()
    port = urlsplit(first.url).port
    seen: list[tuple[int, int]] = []
    driver = FaultDriver(
        kind, FaultOptions(kind=(kind,), at_s=0.2, count=2, every_s=2.5, down_s=0.3), first,
        make_server=lambda p: ServerProcess("all", port=p),
        on_new_server=lambda server, generation: seen.append((generation, server.pid)))
    try:
        driver.start()
        assert driver.server_failed() is None
        driver.on_phase("warmup")  # the clock starts at the measurement only
        time.sleep(0.3)
        assert not driver.events
        driver.on_phase("measure")
        assert _wait(lambda: len(driver.events) == 2 and "up_ns" in driver.events[-1], 20)
        assert [g for g, _ in seen] == [1, 2]
        pids = [first.pid] + [pid for _, pid in seen]
        assert len(set(pids)) == 3
        assert urlsplit(driver.server.url).port == port
        assert _health(driver.server.url)["pid"] == pids[-1]
        for event in driver.events:
            assert event["fault_ns"] <= event["down_ns"] <= event["up_ns"]
            assert event["exit_code"] == code
            # down_s is honoured: no new process before it has passed
            assert event["up_ns"] - event["down_ns"] >= 0.3e9
        assert driver.events[1]["fault_ns"] - driver.events[0]["fault_ns"] >= 2.4e9
        assert driver.server_failed() is None
    finally:
        driver.close()
        first.stop()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in pids)
    assert "server generation 2" in driver.output()


def test_a_crash_outside_a_fault_is_reported():
    first = ServerProcess("all").start()
    driver = FaultDriver("restart-sigterm", FaultOptions(at_s=60.0), first,
                         make_server=lambda p: ServerProcess("all", port=p))
    try:
        driver.start()
        driver.on_phase("measure")
        os.killpg(first.pid, signal.SIGKILL)
        assert _wait(lambda: driver.server_failed() is not None, 5)
        assert "outside a planned fault" in driver.server_failed()
    finally:
        driver.close()
        first.stop()


def test_close_before_the_measurement_does_nothing():
    first = ServerProcess("all").start()
    driver = FaultDriver("restart-sigkill", FaultOptions(at_s=0.0), first,
                         make_server=lambda p: ServerProcess("all", port=p))
    try:
        driver.start()
        driver.close()
        assert driver.events == [] and first.process.poll() is None
    finally:
        first.stop()


def test_cut_calls_the_path():
    calls: list[int] = []
    driver = FaultDriver("cut", FaultOptions(kind=("cut",), at_s=0.0, count=2, every_s=2.0),
                         object(), cut=lambda: calls.append(time.monotonic_ns()))
    driver.start()
    driver.on_phase("measure")
    try:
        assert _wait(lambda: len(calls) == 2, 10)
        assert calls[1] - calls[0] >= 1.9e9
        assert [e["kind"] for e in driver.events] == ["cut", "cut"]
    finally:
        driver.close()


def test_a_restart_needs_a_way_to_start_servers():
    with pytest.raises(ValueError):
        FaultDriver("restart-sigterm", FaultOptions(), object())
    with pytest.raises(ValueError):
        FaultDriver("cut", FaultOptions(), object())


def test_the_extension_refuses_what_it_cannot_do(tmp_path):
    """A restart needs a server the harness started; a cut needs the proxy in the path."""
    from duplexbench.faults.extension import FaultsExtension
    from duplexbench.runner.extension import PointContext
    from duplexbench.runner.outcome import PointFailed
    from duplexbench.runner.target import ServerHandle
    from duplexbench.scenario import load_scenario

    scenario = load_scenario("scenarios/faults.toml")
    restart, _, cut = scenario.points()[:3]
    extension = FaultsExtension(scenario.faults)
    external = ServerHandle(url="http://127.0.0.1:1")  # not started by the harness

    def opened(point):
        ctx = PointContext(scenario, point, tmp_path, server=external)
        with extension.open(ctx):
            return ctx

    with pytest.raises(PointFailed, match="server the harness started"):
        opened(restart)
    with pytest.raises(PointFailed, match="network proxy"):
        opened(cut)
    healthy = restart.__class__(**{**restart.__dict__, "fault": ""})
    assert "faults" not in opened(healthy).state
