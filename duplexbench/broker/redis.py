"""A Redis server started by the suite: loopback only, no persistence, pinned, always stopped.

Why a module of its own: multi-worker servers (``--broker redis``) need a
broker, and a broker left running (or listening beyond loopback, or writing
snapshots to disk mid-measurement) would spoil the runs that follow. So the
suite starts Debian's ``/usr/bin/redis-server`` itself, one per run or test
module::

    with RedisProcess(cpu=3) as redis:      # port 0: a free port
        serve(..., "--redis-url", redis.url)

It binds 127.0.0.1 only (``--protected-mode yes`` on top), saves nothing
(``--save "" --appendonly no``: a restart is a data loss, which the servers
answer with a new epoch), runs in its own data directory (removed at stop
when this module made it), is pinned to ``cpu`` (``sched_setaffinity`` before
it starts its threads, so they inherit it), dies with the harness
(``procs.spawn``: PR_SET_PDEATHSIG) and stops with ``SHUTDOWN NOSAVE``, then
SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from duplexbench import procs
from duplexbench.machine.parts import REDIS_SERVER, find_redis

__all__ = ["DEFAULT_BINARY", "RedisError", "RedisMissing", "RedisProcess", "redis_version"]

DEFAULT_BINARY = REDIS_SERVER
_INSTALL_HINT = "install it with: sudo apt-get install redis-server"


class RedisError(RuntimeError):
    """Redis did not start (or stop) as asked; the message carries its log."""


class RedisMissing(RedisError):
    """No redis-server binary: say how to get one."""


def _binary(binary: str | None) -> str:
    found = find_redis(binary)
    if found:
        return found
    raise RedisMissing(f"redis-server not found ({binary or 'not on PATH'}); {_INSTALL_HINT}")


def redis_version(binary: str | None = None) -> str:
    """``redis-server --version``'s ``v=X.Y.Z`` (for meta.json), e.g. ``"7.0.15"``."""
    exe = _binary(binary)
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"\bv=(\S+)", out)
    return match.group(1) if match else out.strip()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _command(host: str, port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One inline command, its first reply line (RESP): enough for PING and SHUTDOWN."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(" ".join(args).encode() + b"\r\n")
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


class RedisProcess:
    """``RedisProcess(port=0, data_dir=None, cpu=None)``: ``start()`` / ``stop()`` or ``with``.

    ``port=0`` picks a free port; ``data_dir=None`` makes a temporary
    directory. The directory is removed at stop if this object created it
    (a given one that already existed is left as it was)."""

    host = "127.0.0.1"  # never anything but loopback: the ground rules, and no auth

    def __init__(self, port: int = 0, data_dir: str | os.PathLike | None = None,
                 cpu: int | None = None, *, binary: str | None = None,
                 startup_timeout: float = 10.0) -> None:
        self.port = port
        self.cpu = cpu
        self.binary = binary
        self.startup_timeout = startup_timeout
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._owns_dir = False
        self.child: procs.Child | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def data_dir(self) -> Path | None:
        return self._data_dir

    @property
    def pid(self) -> int:
        assert self.child is not None, "not started"
        return self.child.pid

    def version(self) -> str:
        return redis_version(self.binary)

    def start(self) -> "RedisProcess":
        exe = _binary(self.binary)
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="duplexbench-redis-"))
            self._owns_dir = True
        elif not self._data_dir.exists():
            self._data_dir.mkdir(parents=True)
            self._owns_dir = True
        # A port picked here can be taken before Redis binds it: try a few.
        attempts = 3 if self.port == 0 else 1
        wanted = self.port
        for attempt in range(attempts):
            self.port = wanted or _free_port(self.host)
            try:
                self._spawn(exe)
                return self
            except RedisError:
                in_use = "Address already in use" in (self._last_log() or "")
                if attempt == attempts - 1 or not in_use:
                    self._cleanup_dir()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _log_path(self) -> Path:
        assert self._data_dir is not None
        return self._data_dir / "redis.log"

    def _last_log(self) -> str | None:
        try:
            return self._log_path().read_text(errors="replace")[-4000:]
        except OSError:
            return None

    def _spawn(self, exe: str) -> None:
        self._log_path().write_text("")  # this attempt's log only
        command = [
            exe,
            "--bind", self.host, "--port", str(self.port),
            "--protected-mode", "yes",
            "--dir", str(self._data_dir),
            "--save", "",  # no RDB snapshots: nothing forks or writes mid-run
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self._log_path()),
            "--loglevel", "warning",
        ]
        # procs.spawn: own session, tracked (atexit kills it), dies with us (PDEATHSIG),
        # pinned right after exec of the shim, before Redis starts its threads.
        self.child = procs.spawn(command, name=f"redis:{self.port}", cpu=self.cpu)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                break
            try:
                if _command(self.host, self.port, "PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        log = self._last_log() or ""
        self.child.stop(timeout=2.0)
        self.child = None
        raise RedisError(f"redis-server on {self.host}:{self.port} did not answer PING within "
                         f"{self.startup_timeout:.0f} s:\n{log}")

    def ping(self) -> bool:
        try:
            return _command(self.host, self.port, "PING").startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> int | None:
        """SHUTDOWN NOSAVE; SIGTERM then SIGKILL if it lingers; remove our directory."""
        code = None
        child, self.child = self.child, None
        if child is not None:
            if child.poll() is None:
                try:
                    _command(self.host, self.port, "SHUTDOWN", "NOSAVE", timeout=1.0)
                except OSError:
                    pass  # it closes the connection as it exits: no reply is normal
                try:
                    child.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            code = child.stop(timeout=timeout)  # reaps it; SIGTERM/SIGKILL if still there
        self._cleanup_dir()
        return code

    def _cleanup_dir(self) -> None:
        if self._owns_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._owns_dir = False

    def __enter__(self) -> "RedisProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
