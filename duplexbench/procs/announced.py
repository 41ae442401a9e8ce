"""A helper process that announces itself on its first line of output.

The server under test and the network proxy are started the same way: their
own process (and process group), pinned to a core, the address read from the
first line that matches, SIGTERM for a graceful stop and SIGKILL for the group
if it does not go in time, and a shim that kills them if the harness itself is
SIGKILLed, so no orphan survives in any case.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Sequence

from .children import dying_with_parent

__all__ = ["AnnouncedProcess", "StartError"]


class StartError(RuntimeError):
    """The process did not announce itself; the message carries its output."""


class AnnouncedProcess:
    """Subclasses say what they are (``what``), which error they raise and how
    to read their announcement (:meth:`_on_line`)."""

    what = "process"
    error: type[StartError] = StartError

    def __init__(self, command: Sequence[str], *, env: dict[str, str] | None = None,
                 cpu: int | None = None, startup_timeout: float = 20.0,
                 cwd: str | None = None) -> None:
        self.command = dying_with_parent(command)
        self.cwd = cwd
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.cpu = cpu
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        #: The recent output, kept for error messages and logs.
        self.output: deque[str] = deque(maxlen=50)
        self._announced = False
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _on_line(self, line: str) -> bool:
        """Read one output line; True once the process has announced itself."""
        raise NotImplementedError

    def _after_spawn(self) -> None:
        """Hook: anything to do to the process right after it exists."""

    def start(self):
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # so Ctrl-C in a terminal reaches only the harness
        )
        if self.cpu is not None and hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(self.process.pid, {self.cpu})
            except OSError:
                self.cpu = None  # recorded as unpinned rather than failing the run
        self._after_spawn()
        found = threading.Event()
        self._reader = threading.Thread(target=self._read_output, args=(found,), daemon=True)
        self._reader.start()
        if not found.wait(self.startup_timeout) or not self._announced:
            self.stop()
            raise self.error(
                f"{self.what} did not start within {self.startup_timeout:.0f} s: "
                f"{' '.join(self.command)}\n" + "\n".join(self.output)
            )
        return self

    def _read_output(self, found: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip()
            self.output.append(line)
            if self._on_line(line) and not self._announced:
                self._announced = True
                found.set()
        found.set()  # output ended: the process is gone

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a graceful stop closes sockets properly), then SIGKILL the group."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._reader is not None:
            self._reader.join(2.0)  # a last line may arrive just before the pipe closes
        return self.process.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
