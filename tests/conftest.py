"""Fixtures shared by every test: a real server process on a loopback port."""

from __future__ import annotations

import os

import pytest

from duplexbench.serverproc import ServerProcess

#: Slow CI can stretch every timeout the tests use (python-websockets does the same).
TIMEOUT_SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


@pytest.fixture
def start_server():
    """``start_server(transport="all", args=[...], env={...})`` -> running ServerProcess."""
    started: list[ServerProcess] = []

    def start(transport: str = "all", args=(), env=None) -> ServerProcess:
        server = ServerProcess(transport, args=list(args), env=env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server) -> ServerProcess:
    """A server with every transport mounted, short heartbeats for quick tests."""
    return start_server("all", args=["--heartbeat", "1", "--ping-interval", "2", "--ping-timeout", "2"])
