"""What sits between the subscribers and the server for one point.

A *path* turns the server's URL into the URL the subscribers use, and names
the helper processes it runs (sampled like the server and load generator).
The publisher always talks to the server directly: it sits on the server's
side of any network.

- :class:`DirectPath`: nothing in between.
- :class:`EmulatedPath`: the delay/jitter/bandwidth/loss emulator of
  :mod:`duplexbench.netem` (a proxy on the load generator's core, or netem).

Other paths (a reverse proxy such as nginx) are new classes with the same
``open`` method; :func:`path_for` picks one for a point.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import procs
from .outcome import PointFailed
from .scenario import LoadPoint, Scenario

__all__ = ["DirectPath", "EmulatedPath", "OpenPath", "Path", "path_for"]


@dataclass
class OpenPath:
    """A path in use: the subscribers' URL and the processes to sample by name."""

    url: str
    pids: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    #: Closes every connection on the path at once (the "cut" fault); None when it cannot.
    cut: Callable[[], None] | None = None


class Path(Protocol):
    def open(self, point: LoadPoint, server_url: str) -> contextlib.AbstractContextManager[OpenPath]:
        ...


class DirectPath:
    """Subscribers connect to the server itself."""

    @contextlib.contextmanager
    def open(self, point: LoadPoint, server_url: str) -> Iterator[OpenPath]:
        yield OpenPath(server_url)


@dataclass
class EmulatedPath:
    """The scenario's emulated network, its proxy on the load generator's core.

    ``record(info)`` receives the path's description (the same dict the proxy
    completes with its counters when it closes) for the run's meta.json;
    ``warn(text)`` receives its warnings.
    """

    scenario: Scenario
    cpu: int | None
    record: Callable[[LoadPoint, dict], None] = lambda point, info: None
    warn: Callable[[str], None] = lambda text: None

    @contextlib.contextmanager
    def open(self, point: LoadPoint, server_url: str) -> Iterator[OpenPath]:
        try:
            from .netem import open_network_path
        except ImportError as exc:
            raise PointFailed(f"scenario needs network emulation, unavailable: {exc}") from None
        # The proxy goes on the load generator's core: the server's core stays the server's.
        with open_network_path(self.scenario.network, point.delay_ms, server_url, cpu=self.cpu,
                               seed=self.scenario.seed + point.index) as path:
            for pid in path.pids:
                procs.track(pid, "proxy")
            info = path.info
            self.record(point, info)
            for text in info.get("warnings", []):
                self.warn(f"{point.label}: network: {text}")
            try:
                yield OpenPath(path.url, {"proxy": pid for pid in path.pids[:1]}, info,
                               cut=path.cut)
            finally:
                for pid in path.pids:
                    procs.untrack(pid)


def needs_emulation(scenario: Scenario, point: LoadPoint) -> bool:
    network = scenario.network
    if getattr(point, "fault", "") == "cut":
        return True  # the proxy is what cuts the connections (duplexbench/faults)
    return bool(network is not None and (
        point.delay_ms or network.jitter_ms or network.bandwidth_kbps or network.loss_pct))


def path_for(scenario: Scenario, point: LoadPoint, *, cpu: int | None,
             record: Callable[[LoadPoint, dict], None] | None = None,
             warn: Callable[[str], None] | None = None,
             server_cpu: int | None = None) -> "Path":
    """The path a point's subscribers take to the server."""
    from .infra import proxy_path  # nginx (duplexbench/proxies), on the server's core

    proxy = proxy_path(scenario, point, cpu=server_cpu, record=record)
    if proxy is not None:
        if needs_emulation(scenario, point):
            raise PointFailed("a scenario cannot combine [proxy] with an emulated [network]")
        return proxy
    if needs_emulation(scenario, point):
        return EmulatedPath(scenario, cpu, record or (lambda p, i: None), warn or (lambda t: None))
    return DirectPath()
