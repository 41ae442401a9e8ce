"""The server a load point measures: how it is obtained, watched and let go.

A *target* opens a :class:`ServerHandle` for one point and closes it after,
given the point's :class:`~duplexbench.runner.extension.PointContext` (the
flags its extensions add are ``ctx.server_args``). Two kinds exist here:

- :class:`SpawnedTarget` (the default): a fresh ``python -m servers`` process
  per point, pinned to the server's core, stopped (gracefully, then its whole
  tree) when the point ends, its output kept as ``server.log``. A fresh server
  per point means no point inherits another's connections, topics or heap.
- :class:`ExternalTarget`: a server someone else runs, given by URL. Nothing
  is started or stopped; its CPU and memory are not sampled (``pid`` None)
  unless a pid is given.

New ways to get a server (another source tree for A/B runs, the Node
reference, a container) are new Target classes; the point orchestration only
uses the handle. A handle whose server can be started again on the same port
has ``relaunch`` (the restart faults use it).
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .. import procs
from ..contract import Transport
from ..procs.node import NodeServerProcess, pin_threads
from ..procs.server import ServerError, ServerProcess
from .outcome import PointFailed

__all__ = ["ExternalTarget", "ServerHandle", "SpawnedTarget", "Target", "fetch_json",
           "served", "stop_server", "tcp_port_args"]


@dataclass
class ServerHandle:
    """What a point sees of its server."""

    url: str
    #: Process to sample (its tree); None when the server is not ours to watch.
    pid: int | None = None
    process: ServerProcess | None = field(default=None, repr=False)
    #: ``relaunch(port)``: a new, not yet started process of the same server (same options,
    #: core and source tree) on ``port``, its plain-TCP listener on the first one's port;
    #: None when the harness cannot start it again.
    relaunch: Callable[[int], ServerProcess] | None = field(default=None, repr=False)
    #: The plain-TCP listener's port (/healthz ``tcp_port``); None when tcp is not mounted.
    tcp_port: int | None = None
    #: The server's cleartext HTTP/2 listener (the Node reference's --h2c-port), "" if none.
    h2c_url: str = ""

    def check_alive(self) -> None:
        """Raise PointFailed when a server we started has exited during the point."""
        proc = self.process
        if proc is not None and proc.process is not None and proc.process.poll() is not None:
            raise PointFailed(f"server exited with code {proc.process.returncode} "
                              f"during the point: {last_lines(chr(10).join(proc.output))}")


class Target(Protocol):
    """Opens the server for one point (a context manager yielding a ServerHandle)."""

    def open(self, ctx: Any) -> contextlib.AbstractContextManager[ServerHandle]:
        ...


def last_lines(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def fetch_json(url: str, timeout: float = 2.0) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.loads(response.read().decode("utf-8"))
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def tcp_port_args(tcp_port: int | None) -> list[str]:
    """``--tcp-port N`` for a relaunch that keeps the first server's plain-TCP port."""
    return ["--tcp-port", str(tcp_port)] if tcp_port else []


def stop_server(server: ServerProcess | None) -> None:
    """Graceful stop (SIGTERM closes sockets properly), then anything it left behind."""
    if server is None or server.process is None:
        return
    try:
        import psutil

        descendants = psutil.Process(server.pid).children(recursive=True)
    except Exception:
        descendants = []
    server.stop(timeout=5.0)
    for child in descendants:
        procs.kill_tree(child.pid, timeout=1.0)
    procs.untrack(server.pid)


@contextlib.contextmanager
def served(server, log_path: Path, what: str = "server",
           on_start: Callable[[Any], None] | None = None,
           relaunch: Callable[..., Any] | None = None) -> Iterator[ServerHandle]:
    """One point's life of a server process: start it (a failure is the point's, with the
    server's last lines), ``on_start(server)`` (pinning, a baseline), track it, and always
    stop it and keep its output in ``log_path``, whatever happened in between.

    ``relaunch(port, tcp_port)`` makes a new process of the same server; the handle's
    ``relaunch(port)`` passes it this server's plain-TCP port, so a restarted server
    listens where the clients (or a network path in front of it) already connect."""
    try:
        try:
            server.start()
        except ServerError as exc:
            raise PointFailed(f"{what} did not start: {last_lines(str(exc))}") from None
        if on_start is not None:
            on_start(server)
        procs.track(server.pid, "server")
        tcp_port = getattr(server, "tcp_port", None)
        again = None if relaunch is None else (lambda port: relaunch(port, tcp_port))
        yield ServerHandle(url=server.url, pid=server.pid, process=server, relaunch=again,
                           tcp_port=tcp_port, h2c_url=getattr(server, "h2c_url", ""))
    finally:
        with procs.shielded():
            output = "\n".join(server.output)
            stop_server(server)
            log_path.write_text(output + "\n", encoding="utf-8")


@dataclass
class SpawnedTarget:
    """A fresh server process per point, pinned to ``cpu``: ``python -m servers``, or the
    Node reference for a point of ``[server] stack = "node"`` (docs/http2.md)."""

    args: Sequence[str] = ()
    cpu: int | None = None
    env: dict[str, str] | None = None
    ca_file: str = ""  # verifies an https server (TLS points; duplexbench/runner/outside.py)
    #: Another source tree whose servers to run (A/B runs: duplexbench/compare/ab.py).
    src: str | None = None

    @contextlib.contextmanager
    def open(self, ctx: Any) -> Iterator[ServerHandle]:
        mount = Transport(ctx.point.transport).server_mount
        args = list(self.args) + list(ctx.server_args)
        ca_file = self.ca_file or ctx.ca_file

        if getattr(ctx.point, "stack", "python") == "node":
            def launch_node(port: int = 0, tcp_port: int | None = None) -> ServerProcess:
                return NodeServerProcess(mount, port=port, args=args + tcp_port_args(tcp_port),
                                         env=self.env, cpu=self.cpu, ca_file=ca_file)

            def pinned(server: Any) -> None:  # V8's and libuv's threads serve too
                if self.cpu is not None:
                    pin_threads(server.pid, self.cpu)

            with served(launch_node(), ctx.point_dir / "server.log", "node server", pinned,
                        relaunch=launch_node) as handle:
                yield handle
            return

        def launch(port: int = 0, tcp_port: int | None = None) -> ServerProcess:
            return ServerProcess(mount, port=port, args=args + tcp_port_args(tcp_port),
                                 env=self.env, cpu=self.cpu, ca_file=ca_file, src=self.src)

        with served(launch(), ctx.point_dir / "server.log", relaunch=launch) as handle:
            yield handle


@dataclass
class ExternalTarget:
    """A server already running at ``url``; checked with /healthz, never started or stopped."""

    url: str
    pid: int | None = None

    @contextlib.contextmanager
    def open(self, ctx: Any) -> Iterator[ServerHandle]:
        url = self.url.rstrip("/")
        health = fetch_json(url + "/healthz")
        if not health:
            raise PointFailed(f"no server answers {url}/healthz")
        tcp_port = health.get("tcp_port")
        yield ServerHandle(url=url, pid=self.pid,
                           tcp_port=tcp_port if isinstance(tcp_port, int) else None)
