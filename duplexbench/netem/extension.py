"""The emulated network as a point extension: delay, jitter, bandwidth and loss on the path.

A point whose scenario has a ``[network]`` table with something to emulate
(a delay, jitter, a bandwidth cap, loss), or a ``cut`` fault (the proxy is what
cuts every connection), gets :func:`~duplexbench.netem.open_network_path` in front
of the server: the subscribers connect through it, the publisher does not (it
stands for the application's back end). The proxy runs on the load generator's
core, so the server's core stays the server's; it is sampled as ``proxy`` and
its description goes to meta.json ``network_paths``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from .. import procs
from ..measure.metrics import process_stats
from ..measure.validity import SATURATED_PCT
from ..runner.extension import PointContext, PointData, PointExtension
from ..runner.outcome import PointFailed, num

__all__ = ["NetworkExtension", "needs_emulation"]


def needs_emulation(scenario: Any, point: Any) -> bool:
    """Whether the point's subscribers go through the emulated network."""
    network = scenario.network
    if getattr(point, "fault", "") == "cut":
        return True  # the proxy is what cuts the connections (duplexbench/faults)
    return bool(network is not None and (
        point.delay_ms or network.jitter_ms or network.bandwidth_kbps or network.loss_pct))


class NetworkExtension(PointExtension):
    """The scenario's emulated network, its proxy on the load generator's core."""

    name = "network"

    @contextlib.contextmanager
    def open(self, ctx: PointContext) -> Iterator[None]:
        scenario, point = ctx.scenario, ctx.point
        if not needs_emulation(scenario, point):
            yield
            return
        if getattr(point, "proxy", "none") != "none":
            raise PointFailed("a scenario cannot combine [proxy] with an emulated [network]")
        try:
            from .path import open_network_path
        except ImportError as exc:
            raise PointFailed(f"scenario needs network emulation, unavailable: {exc}") from None
        cpu = ctx.plan.loadgen if ctx.plan is not None else None
        with open_network_path(scenario.network, point.delay_ms, ctx.sub_url, cpu=cpu,
                               seed=scenario.seed + point.index) as path:
            for pid in path.pids:
                procs.track(pid, "proxy")
            info = path.info
            ctx.record("network_paths", {"path": info})
            for text in info.get("warnings", []):
                ctx.warn(f"{point.label}: network: {text}")
            ctx.sub_url = path.url
            ctx.pids.update({"proxy": pid for pid in path.pids[:1]})
            ctx.cut = path.cut
            with contextlib.ExitStack() as stack:
                tcp_path = self._tcp_path(ctx, stack)
                try:
                    yield
                finally:
                    for pid in path.pids + (tcp_path.pids if tcp_path else []):
                        procs.untrack(pid)

    @staticmethod
    def _tcp_path(ctx: PointContext, stack: contextlib.ExitStack) -> Any:
        """Transport tcp: the subscribers' lines go to the TCP listener, not to sub_url, so
        the same emulated link (a second proxy, same options) stands in front of it too;
        without it they would silently bypass the network. The cut fault cuts both."""
        point, scenario = ctx.point, ctx.scenario
        tcp_port = getattr(ctx.server, "tcp_port", None)
        if point.transport != "tcp":
            return None
        if not tcp_port:
            raise PointFailed("transport tcp behind [network]: the server named no TCP "
                              "listener port (its start-up line / /healthz tcp_port)")
        from .path import open_network_path
        host = urlsplit(ctx.pub_url or ctx.server.url).hostname or "127.0.0.1"
        cpu = ctx.plan.loadgen if ctx.plan is not None else None
        tcp_path = stack.enter_context(open_network_path(
            scenario.network, point.delay_ms, f"http://{host}:{tcp_port}", cpu=cpu,
            seed=scenario.seed + point.index + 1, calibrate=False))
        for pid in tcp_path.pids:
            procs.track(pid, "proxy")
        tcp_path.info["for"] = "tcp listener"  # the same dict gains the proxy's counters at close
        ctx.record("network_paths", {"path": tcp_path.info})
        listen = urlsplit(tcp_path.url)
        ctx.sub_tcp = f"{listen.hostname}:{listen.port}"
        http_cut = ctx.cut

        def cut_both() -> None:
            if http_cut is not None:
                http_cut()
            tcp_path.cut()

        ctx.cut = cut_both
        return tcp_path

    def notes(self, ctx: PointContext, row: dict, data: PointData | None) -> list[str]:
        """The proxy shares the load generator's core: say so when that core was saturated."""
        load = data.load if data is not None else None
        if str(row.get("status", "ok")) == "failed" or load is None or not len(load) or "proxy" not in set(load["process"]) \
                or row.get("proxy") not in (None, "none"):  # nginx sits on the server's core
            return []
        cpu = num(row.get("client_cpu_pct"))
        proxy = num(process_stats(load, "proxy")["cpu_pct"])
        if cpu is None or proxy is None or cpu + proxy <= SATURATED_PCT:
            return []
        return [f"the load generator's core was {cpu + proxy:.0f}% busy (load generator "
                f"{cpu:.0f}% + network proxy {proxy:.0f}%): latency includes queueing on "
                "that core, so lower the rate or clients"]
