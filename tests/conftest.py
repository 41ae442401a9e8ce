"""Fixtures shared by every test: a real server process on a loopback port."""

from __future__ import annotations

import pytest

from duplexbench.procs.server import ServerProcess


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
