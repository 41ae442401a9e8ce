"""The server under test as a child process: start it, learn its URL, stop it.

Used by the runner, the engines benchmark and the tests, so a server is always
started and stopped the same way (see :mod:`duplexbench.procs.announced`): its own
process (its load is measured alone), its URL read from its first line of
output, then ``/healthz`` polled until it answers.
"""

from __future__ import annotations

import re
import ssl
import sys
import time
import urllib.request

from .announced import AnnouncedProcess, StartError

__all__ = ["ServerError", "ServerProcess"]

_URL_LINE = re.compile(r"listening on (https?://\S+)")
#: `` and tcp://H:TP`` on the same line when the plain-TCP listener runs (servers/README.md).
_TCP_PORT = re.compile(r" and tcp://\S+:(\d+)")


class ServerError(StartError):
    """The server did not start; the message carries its last output lines."""


class ServerProcess(AnnouncedProcess):
    """``with ServerProcess(...) as server: server.url`` — a running server."""

    what = "server"
    error = ServerError

    def __init__(
        self,
        transport: str = "all",
        host: str = "127.0.0.1",
        port: int = 0,
        args: list[str] | tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        cpu: int | None = None,
        startup_timeout: float = 20.0,
        ca_file: str = "",
        src: str | None = None,
    ) -> None:
        # src: another source tree's servers (A/B runs, duplexbench/compare/ab.py), run with this
        # interpreter: cwd and PYTHONPATH both point there, so its `servers` and the
        # `duplexbench` they import shadow the installed ones.
        if src is not None:
            env = {**(env or {}), "PYTHONPATH": str(src)}
        super().__init__(
            [sys.executable, "-m", "servers", "--transport", transport,
             "--host", host, "--port", str(port), *args],
            env=env, cpu=cpu, startup_timeout=startup_timeout, cwd=src,
        )
        self.url: str = ""
        #: The plain-TCP listener's port, from the first line; None when tcp is not mounted.
        self.tcp_port: int | None = None
        self.ca_file = ca_file  # verifies an https server's certificate (TLS runs)

    def _on_line(self, line: str) -> bool:
        if not self.url:
            match = _URL_LINE.search(line)
            if match:
                self.url = match.group(1).rstrip("/")
                tcp = _TCP_PORT.search(line)
                self.tcp_port = int(tcp.group(1)) if tcp else None
        return bool(self.url)

    def start(self) -> "ServerProcess":
        super().start()
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                context = ssl.create_default_context(cafile=self.ca_file or None) \
                    if self.url.startswith("https:") else None
                with urllib.request.urlopen(self.url + "/healthz", timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ServerError(f"server at {self.url} never answered /healthz\n" + "\n".join(self.output))
