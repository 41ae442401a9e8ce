"""Faults as a point extension: a restart, a cut or a killed worker during the point, and its
recovery figures.

For a point with a ``[faults]`` kind, :class:`FaultsExtension` opens once the
subscribers' path exists (a cut needs the network proxy's ``cut``, which the
emulated path provides), starts the :class:`~duplexbench.faults.driver.FaultDriver`
when the sampler runs (new server processes are sampled as ``server@N`` and
merged back into one ``server`` series when the row is built), passes it the
load generator's phases, stands in for the server's ``check_alive`` (a server
that is down because we restarted it is not a crash), stops the servers it
started when the point ends, and adds the fault columns to the row
(:func:`~duplexbench.faults.analysis.annotate_row`) and the plan and events to
meta.json ``faults``. Every point gets the clients' back-off from the table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .. import procs
from ..runner.extension import PointContext, PointData, PointExtension
from ..runner.outcome import PointFailed
from .analysis import annotate_row
from .driver import FaultDriver

__all__ = ["FaultsExtension"]


class FaultsExtension(PointExtension):
    """The ``[faults]`` table of a scenario, applied point by point."""

    name = "faults"

    def __init__(self, faults: Any) -> None:
        #: The scenario's FaultOptions (duplexbench/scenario/faults.py).
        self.faults = faults

    def spec_fields(self, point: Any) -> dict:
        return self.faults.spec_fields()  # the clients' back-off, on every point

    @contextlib.contextmanager
    def open(self, ctx: PointContext) -> Iterator[None]:
        kind = ctx.point.fault
        if not kind:
            yield
            return
        driver = self._driver(ctx, kind)
        ctx.state[self.name] = driver
        ctx.check_alive = self._check_alive(driver)
        try:
            yield
        finally:
            if ctx.state.pop("faults.started", False):
                driver.close()
                for server in driver.generations[1:]:
                    procs.untrack(server.pid)
                if len(driver.generations) > 1:
                    (ctx.point_dir / "server-restarts.log").write_text(driver.output() + "\n",
                                                                      encoding="utf-8")

    def _driver(self, ctx: PointContext, kind: str) -> FaultDriver:
        """The point's fault driver; PointFailed when this point's setup cannot have it."""
        make_server = cut = None
        if kind == "kill-worker":
            if ctx.server.process is None or not getattr(ctx.point, "brokered", False):
                raise PointFailed("fault kill-worker needs a server the harness started with "
                                  "workers behind a broker ([server] broker = \"redis\")")
        elif kind.startswith("restart"):
            handle = ctx.server
            if handle.process is None or handle.relaunch is None:
                raise PointFailed(f"fault {kind} needs a server the harness started "
                                  "(not an external --url server)")
            make_server = handle.relaunch  # the same server: same options, core and source tree
        else:
            cut = ctx.cut
            if cut is None:
                raise PointFailed("fault cut needs the network proxy in the subscribers' path")

        def on_new_server(server: Any, generation: int) -> None:
            procs.track(server.pid, "server")
            sampler = ctx.state.get("faults.sampler")
            if sampler is not None:
                sampler.add(f"server@{generation}", server.pid)

        return FaultDriver(kind, self.faults, ctx.server.process, make_server=make_server,
                           cut=cut, on_new_server=on_new_server)

    @staticmethod
    def _check_alive(driver: FaultDriver):
        def check_alive() -> None:  # like ServerHandle.check_alive; a planned restart is not a crash
            failure = driver.server_failed()
            if failure:
                raise PointFailed(failure)
        return check_alive

    def on_sampling(self, ctx: PointContext, sampler: Any) -> None:
        driver = ctx.state.get(self.name)
        if driver is not None:
            ctx.state["faults.sampler"] = sampler
            driver.start()
            ctx.state["faults.started"] = True

    def on_phase(self, ctx: PointContext, phase: str) -> None:
        driver = ctx.state.get(self.name)
        if driver is not None:
            driver.on_phase(phase)

    def contribute(self, ctx: PointContext, row: dict, data: PointData | None) -> dict:
        driver = ctx.state.get(self.name)
        if driver is None or data is None:
            return {}
        summary = driver.summary()  # the plan, events and measurement start (monotonic ns)
        updated = dict(row)  # recovery, failed publishes, reconnect storm; status judged anew
        details = annotate_row(updated, kind=ctx.point.fault, driver_summary=summary,
                               samples=data.samples, load=data.load, counters=data.counters)
        ctx.record("faults", {**summary, **details})
        return updated
