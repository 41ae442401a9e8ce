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


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``): a module's tests stay on one worker, so a
    module-scoped server is started once; modules sharing session runs share a group."""
    for item in items:
        if not any(m.name == "xdist_group" for m in item.iter_markers()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
