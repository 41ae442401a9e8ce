"""The faults' side of one point's orchestration (duplexbench/point.py calls it).

Kept here so the point runner needs only a few lines: :meth:`PointFaults.open`
returns None for a point without a fault; otherwise the object starts the
:class:`~duplexbench.faults.driver.FaultDriver` once the sampler exists (new
server processes are sampled as ``server@N`` and merged back into one
``server`` series by :func:`~duplexbench.faults.analysis.merge_server_generations`),
passes it the load generator's phases, stands in for the server handle's
``check_alive`` (a server that is down because we restarted it is not a
crash), and stops the servers it started when the point ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import procs
from ..contract import Transport
from ..outcome import PointFailed
from ..serverproc import ServerProcess
from .driver import FaultDriver

__all__ = ["PointFaults"]


class PointFaults:
    """One point's faults; see the module doc for the life cycle."""

    def __init__(self, driver: FaultDriver, log_path: Path) -> None:
        self.driver = driver
        self.log_path = log_path
        self._sampler: Any = None
        self._started = False

    @classmethod
    def open(cls, scenario: Any, point: Any, handle: Any, opened: Any, target: Any,
             point_dir: Path) -> "PointFaults | None":
        """The point's faults, or None when it has none. Raises PointFailed when impossible."""
        kind = getattr(point, "fault", "")
        if not kind or scenario.faults is None:
            return None
        make_server = cut = None
        if kind.startswith("restart"):
            process = getattr(handle, "process", None)
            if process is None or not hasattr(target, "args"):
                raise PointFailed(f"fault {kind} needs a server the harness started "
                                  "(not an external --url server)")

            def make_server(port: int) -> ServerProcess:
                # the same server the target started: same options, core and source tree
                return ServerProcess(Transport(point.transport).server_mount, port=port,
                                     args=list(target.args), env=target.env, cpu=target.cpu,
                                     src=getattr(target, "src", None))
        else:
            cut = getattr(opened, "cut", None)
            if cut is None:
                raise PointFailed("fault cut needs the network proxy in the subscribers' path")
        hook: PointFaults

        def on_new_server(server: ServerProcess, generation: int) -> None:
            procs.track(server.pid, "server")
            if hook._sampler is not None:
                hook._sampler.add(f"server@{generation}", server.pid)

        driver = FaultDriver(kind, scenario.faults, handle.process, make_server=make_server,
                             cut=cut, on_new_server=on_new_server)
        hook = cls(driver, point_dir / "server-restarts.log")
        return hook

    def start(self, sampler: Any) -> None:
        self._sampler = sampler
        self.driver.start()
        self._started = True

    def on_phase(self, phase: str) -> None:
        self.driver.on_phase(phase)

    def check_alive(self) -> None:
        """Like ServerHandle.check_alive, but a planned restart is not a crash."""
        failure = self.driver.server_failed()
        if failure:
            raise PointFailed(failure)

    def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self.driver.close()
        for server in self.driver.generations[1:]:
            procs.untrack(server.pid)
        if len(self.driver.generations) > 1:
            self.log_path.write_text(self.driver.output() + "\n", encoding="utf-8")

    def summary(self) -> dict:
        """The driver's plan, events and measurement start (monotonic ns), for the row."""
        return self.driver.summary()
