"""The server under test as a child process: start it, learn its URL, stop it.

Used by the runner, the Locust engine and the tests, so a server is always
started and stopped the same way: its own process (its load is measured
alone), its URL read from its first line of output, SIGTERM for a graceful
shutdown and SIGKILL if it does not go in time, so no orphan survives.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque

from duplexbench.procs import dying_with_parent

__all__ = ["ServerError", "ServerProcess"]

_URL_LINE = re.compile(r"listening on (http://\S+)")


class ServerError(RuntimeError):
    """The server did not start; the message carries its last output lines."""


class ServerProcess:
    """``with ServerProcess(...) as server: server.url`` — a running server."""

    def __init__(
        self,
        transport: str = "all",
        host: str = "127.0.0.1",
        port: int = 0,
        args: list[str] | tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        cpu: int | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        # The shim makes the server die with us even if we are SIGKILLed.
        self.command = dying_with_parent([
            sys.executable, "-m", "servers",
            "--transport", transport, "--host", host, "--port", str(port), *args,
        ])
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.cpu = cpu
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.url: str = ""
        #: The server's recent output, kept for error messages.
        self.output: deque[str] = deque(maxlen=50)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> "ServerProcess":
        self.process = subprocess.Popen(
            self.command, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # so Ctrl-C in a terminal reaches only the harness
        )
        if self.cpu is not None and hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(self.process.pid, {self.cpu})
            except OSError:
                pass
        found = threading.Event()
        threading.Thread(target=self._read_output, args=(found,), daemon=True).start()
        if not found.wait(self.startup_timeout) or not self.url:
            self.stop()
            raise ServerError(
                f"server did not start within {self.startup_timeout:.0f} s: {' '.join(self.command)}\n"
                + "\n".join(self.output)
            )
        self._wait_healthy()
        return self

    def _read_output(self, found: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())
            if not self.url:
                match = _URL_LINE.search(line)
                if match:
                    self.url = match.group(1).rstrip("/")
                    found.set()
        found.set()  # output ended: the process is gone

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ServerError(f"server at {self.url} never answered /healthz\n" + "\n".join(self.output))

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful: closes sockets properly), then SIGKILL the group."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
