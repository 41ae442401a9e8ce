"""Carry out a point's faults while its load generator runs.

The runner starts one :class:`FaultDriver` per point that has a fault, tells it
when the measurement starts (:meth:`FaultDriver.on_phase`), asks it whether the
server is legitimately down (:meth:`FaultDriver.server_failed`) and closes it
at the end. The driver works in its own thread so that a restart (seconds of
SIGTERM flush, ``down_s``, a new process answering ``/healthz``) never stalls
the runner's reading of load-generator events.

Restart: the old server gets SIGTERM (graceful: it flushes subscriber queues,
bounded by its ``--shutdown-timeout``) or SIGKILL, then, ``down_s`` after it is
gone, a new server process starts on the SAME port (aiohttp binds with
SO_REUSEADDR, so connections of the old process in TIME_WAIT do not block it).
The new process has a new epoch: clients learn it from the reset their old
cursor earns them (servers/README.md). Cut: the network proxy closes every
connection at once (SIGUSR1, duplexbench/netem/proxy.py); the server stays up.
Kill-worker: SIGKILL to one worker process of a server with workers behind a
broker (a child of the server's pid: servers/workers.py), the one holding the
most sockets, so the fault reaches clients; the server goes on answering on its
other workers and its parent starts a new worker, whose pid and start are
recorded. Its clients reconnect (to a live worker) and resume from their cursors.

Why the thread lives until :meth:`close`: every child is spawned with
PR_SET_PDEATHSIG (procs.dying_with_parent), which the kernel fires when the
spawning *thread* exits; the thread that started the new server must outlive it.

Every fault is recorded as a dict in :attr:`FaultDriver.events` (monotonic ns,
the clock the load generator stamps deliveries with), which
:mod:`duplexbench.faults.analysis` turns into recovery figures.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psutil

from ..procs import count_socket_fds
from ..scenario.faults import FaultOptions

__all__ = ["FaultDriver", "RESTART_ATTEMPTS"]

#: Starting the new server is retried this often (a port still held for a moment).
RESTART_ATTEMPTS = 5
#: SIGTERM grace before the driver escalates to SIGKILL: longer than the servers'
#: default --shutdown-timeout, so a graceful flush is never cut short by us.
TERM_GRACE_S = 15.0
#: How long the driver waits for the server's parent to start a worker in place of the killed one.
RESPAWN_WAIT_S = 15.0


class FaultDriver:
    """Runs the faults of one point in a background thread (see the module doc)."""

    def __init__(self, kind: str, options: FaultOptions, server: Any, *,
                 make_server: Callable[[int], Any] | None = None,
                 cut: Callable[[], None] | None = None,
                 on_new_server: Callable[[Any, int], None] | None = None,
                 term_grace_s: float = TERM_GRACE_S) -> None:
        if kind.startswith("restart") and make_server is None:
            raise ValueError("a restart fault needs make_server")
        if kind == "cut" and cut is None:
            raise ValueError("a cut fault needs a network proxy to cut")
        self.kind = kind
        self.options = options
        #: The server now serving (a new object after each restart).
        self.server = server
        #: Every server process of the point, oldest first.
        self.generations: list[Any] = [server]
        self.events: list[dict] = []
        self.error = ""
        self._make_server = make_server
        self._cut = cut
        self._on_new_server = on_new_server or (lambda server, generation: None)
        self._term_grace_s = term_grace_s
        self._measure_ns = 0
        self._measure = threading.Event()
        self._release = threading.Event()  # the point is over: do nothing more
        self._idle = threading.Event()  # the thread has nothing left to do
        self._may_exit = threading.Event()  # every server it started has been stopped
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="duplexbench-faults", daemon=True)

    # The runner's side ---------------------------------------------------------

    def start(self) -> "FaultDriver":
        self._thread.start()
        return self

    def on_phase(self, phase: str) -> None:
        """The load generator's phase events; the faults' clock starts at ``measure``."""
        if phase == "measure" and not self._measure.is_set():
            self._measure_ns = time.monotonic_ns()
            self._measure.set()

    def server_failed(self) -> str | None:
        """Why the point must fail because of the server, or None (down on purpose is fine)."""
        if self.error:
            return self.error
        if self._busy:
            return None
        process = getattr(self.server, "process", None)
        if process is not None and process.poll() is not None:
            return f"server exited with code {process.returncode} outside a planned fault"
        return None

    def close(self) -> None:
        """Stop: no more faults; stop the servers this driver started; end the thread."""
        self._release.set()
        if self._thread.is_alive():
            self._idle.wait(60.0)  # a restart in progress finishes (bounded by its timeouts)
        for server in self.generations[1:]:
            try:
                server.stop(timeout=5.0)
            except Exception:  # one server that will not stop must not keep the others
                pass
        self._may_exit.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def output(self) -> str:
        """The log lines of every server generation, for server.log."""
        parts = []
        for number, server in enumerate(self.generations):
            pid = getattr(getattr(server, "process", None), "pid", "?")
            parts.append(f"--- server generation {number} (pid {pid}) ---")
            parts.extend(getattr(server, "output", ()))
        return "\n".join(parts)

    def summary(self) -> dict:
        """JSON for meta.json: the plan and what happened."""
        return {**self.options.to_dict(), "kind": self.kind, "events": self.events,
                "measure_ns": self._measure_ns, "error": self.error or None}

    # The thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._faults()
        except Exception as exc:  # reported through server_failed(): the point fails
            self.error = f"fault {self.kind} failed: {type(exc).__name__}: {exc}"
        finally:
            self._busy = False
            self._idle.set()
            self._may_exit.wait()

    def _faults(self) -> None:
        while not self._measure.wait(0.1):
            if self._release.is_set():
                return
        for number, at_s in enumerate(self.options.times()):
            due_ns = self._measure_ns + int(at_s * 1e9)
            if self._release.wait(max(0.0, (due_ns - time.monotonic_ns()) / 1e9)):
                return
            event: dict = {"n": number, "kind": self.kind, "at_s": at_s}
            self.events.append(event)
            self._busy = True
            if self.kind == "cut":
                event["fault_ns"] = time.monotonic_ns()
                assert self._cut is not None
                self._cut()
                event["down_ns"] = event["up_ns"] = event["fault_ns"]
            elif self.kind == "kill-worker":
                self._kill_worker(event)
            else:
                self._restart(event)
            self._busy = False

    def _restart(self, event: dict) -> None:
        old = self.server
        port = urlsplit(old.url).port
        process = old.process
        event["old_pid"] = process.pid
        event["fault_ns"] = time.monotonic_ns()
        if self.kind == "restart-sigterm":
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(self._term_grace_s)
            except Exception:  # did not finish its flush in time: the run says so
                event["escalated"] = "SIGKILL after %.0f s" % self._term_grace_s
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(10.0)
        else:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(10.0)
        event["down_ns"] = time.monotonic_ns()
        event["exit_code"] = process.returncode
        if self._release.wait(self.options.down_s):
            return
        last: Exception | None = None
        for attempt in range(RESTART_ATTEMPTS):
            assert self._make_server is not None
            new = self._make_server(port)
            try:
                new.start()
            except Exception as exc:  # e.g. the port not yet free: try again shortly
                last = exc
                if self._release.wait(0.2 * (attempt + 1)):
                    return
                continue
            event["up_ns"] = time.monotonic_ns()
            event["new_pid"] = new.process.pid
            event["start_attempts"] = attempt + 1
            self.generations.append(new)
            self.server = new
            self._on_new_server(new, len(self.generations) - 1)
            return
        raise RuntimeError(f"the new server did not start on port {port} after "
                           f"{RESTART_ATTEMPTS} attempts: {str(last).splitlines()[0] if last else ''}")


    def _kill_worker(self, event: dict) -> None:
        parent = psutil.Process(self.server.process.pid)
        workers = parent.children()
        if not workers:
            raise RuntimeError(f"the server (pid {parent.pid}) has no worker processes to kill: "
                               "kill-worker needs --workers N --broker redis")
        # The worker holding the most sockets: a kill that reaches no client tests nothing.
        sockets = {w.pid: count_socket_fds(w.pid) for w in workers}
        victim = max(workers, key=lambda w: (sockets[w.pid], -w.pid))
        event.update(worker_pid=victim.pid, worker_sockets=sockets[victim.pid],
                     workers=len(workers), old_pid=victim.pid)
        event["fault_ns"] = time.monotonic_ns()
        try:
            victim.send_signal(signal.SIGKILL)
            victim.wait(10.0)  # gone once its parent has reaped it
        except psutil.NoSuchProcess:
            pass
        # The server never stopped answering (its other workers): down and up are the kill.
        event["down_ns"] = event["up_ns"] = time.monotonic_ns()
        event["exit_code"] = -signal.SIGKILL
        before = {w.pid for w in workers}
        deadline = time.monotonic() + RESPAWN_WAIT_S
        while not self._release.wait(0.05) and time.monotonic() < deadline:
            try:
                new = [c.pid for c in parent.children() if c.pid not in before]
            except psutil.NoSuchProcess:
                return  # the server itself is gone: server_failed() says so
            if new:
                event["new_pid"] = new[0]
                event["respawn_s"] = (time.monotonic_ns() - event["fault_ns"]) / 1e9
                return


def _signal_group(pid: int, signum: int) -> None:
    """The server runs in its own process group (childproc): signal all of it."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
