"""The Node.js reference server (servers/node/) as a child process, started like the Python one.

The ``stacks`` command and HTTP/2 points (``[server] stack = "node"``, docs/http2.md)
both start it; it lives below the runner so a point's target can pick it per point.
Over TLS its ``/healthz`` is checked with the run's CA (``ca_file``); with
``--h2c-port`` its start-up line names the cleartext HTTP/2 listener, kept as
``h2c_url``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Sequence

from ..machine.parts import NODE_DIR, NODE_MIN_MAJOR, node_unavailable
from .announced import AnnouncedProcess
from .server import ServerProcess

__all__ = ["NODE_DIR", "NODE_MIN_MAJOR", "NodeServerProcess", "node_unavailable", "pin_threads"]

_H2C = re.compile(r"h2c (http://[^\s);]+)")


def pin_threads(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` to ``cpu``.

    sched_setaffinity(pid) moves only the main thread; Node starts its V8 and
    libuv threads before a parent can pin it, and their CPU is server CPU too.
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = [str(pid)]
    for tid in tids:
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(int(tid), {cpu})


class NodeServerProcess(ServerProcess):
    """``node servers/node/server.js``: started, announced and stopped like the Python server."""

    what = "node server"

    def __init__(self, transport: str = "all", host: str = "127.0.0.1", port: int = 0,
                 args: Sequence[str] = (), env: dict[str, str] | None = None,
                 cpu: int | None = None, startup_timeout: float = 20.0,
                 ca_file: str = "") -> None:
        AnnouncedProcess.__init__(
            self, [shutil.which("node") or "node", str(NODE_DIR / "server.js"),
                   "--transport", transport, "--host", host, "--port", str(port), *args],
            env=env, cpu=cpu, startup_timeout=startup_timeout)
        self.url = ""
        self.ca_file = ca_file  # verifies the https /healthz (TLS points)
        #: The cleartext HTTP/2 listener (``--h2c-port``), "" when there is none.
        self.h2c_url = ""
        self.tcp_port = None  # from the first line, as ServerProcess (`` and tcp://H:TP``)

    def _on_line(self, line: str) -> bool:
        if not self.url:
            match = _H2C.search(line)
            if match:
                self.h2c_url = match.group(1).rstrip("/")
        return super()._on_line(line)
