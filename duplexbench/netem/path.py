"""One emulated network path per load point: what the runner opens and closes.

``open_network_path(options, delay_ms, target_url)`` returns a
:class:`NetworkPath` whose ``url`` the subscribers use instead of the server's
(the publisher keeps the server URL: it sits on the server's side of the
network). ``info`` is a JSON-ready dict for the run's meta.json: the mode
actually used, the settings, where the emulator ran, its calibration, and any
warning (e.g. netem requested but unavailable, so the proxy was used). Opening a
path never fails a run for lack of netem; it fails only if no path at all can be
made (the proxy itself cannot start).

Placement: the proxy process is pinned to the load generator's core (by
default the second-lowest core this process may use, as procs.plan_affinity
plans it; the runner passes its plan's core explicitly). The server's core then
does only the server's work, so its CPU and capacity figures stay comparable with
runs without a network, and at the low rates of the delay scenarios the
proxy's share of the generator core is small (its counters and the generator's
CPU warning show when it is not).
"""

from __future__ import annotations

import os
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import calibrate as _calibrate
from .link import LinkConfig
from .netns import NetnsLink, detect_netem
from .process import ProxyProcess

__all__ = ["NetworkPath", "default_cpu", "link_config", "open_network_path"]

LOSS_MODEL = (
    "proxy: a chunk of n bytes (ceil(n/mss) segments) is held back by one RTO stall "
    "(rto_ms + 2*delay) with probability 1-(1-loss)^segments, delaying everything behind it; "
    "bytes are never dropped (TCP would retransmit them)"
)


def _option(options: Any, name: str, default: Any) -> Any:
    if options is None:
        return default
    if isinstance(options, dict):
        return options.get(name, default)
    return getattr(options, name, default)


def link_config(options: Any, delay_ms: float) -> LinkConfig:
    """The link settings from a scenario's NetworkOptions (or a dict, or None) and one delay."""
    return LinkConfig(
        delay_ms=float(delay_ms or 0),
        jitter_ms=float(_option(options, "jitter_ms", 0.0) or 0),
        bandwidth_kbps=float(_option(options, "bandwidth_kbps", 0) or 0),
        loss_pct=float(_option(options, "loss_pct", 0.0) or 0),
    ).validate()


def default_cpu() -> int | None:
    """The load generator's core by the runner's convention (procs.plan_affinity):
    the second-lowest core this process may use; None (unpinned) with fewer than two."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[1] if len(cpus) > 1 else None


@dataclass  # not frozen: a handle on running processes, whose info gains the proxy's counters at close
class NetworkPath:
    """An open path: ``url`` for subscribers, ``info`` for meta.json; ``close()`` when done."""

    url: str
    info: dict
    _proxy: ProxyProcess | None = field(default=None, repr=False)
    _netns: NetnsLink | None = field(default=None, repr=False)

    @property
    def pids(self) -> list[int]:
        """The emulator's processes, for whoever samples CPU."""
        procs = [self._proxy] if self._proxy else (self._netns.relays if self._netns else [])
        return [p.pid for p in procs if p.process is not None]

    def cut(self) -> None:
        """Close every connection on the path at once (the "cut" fault, duplexbench/faults)."""
        if self._proxy is None:
            raise RuntimeError("cutting connections needs the user-space proxy (mode = proxy)")
        self._proxy.cut()

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
            if self._proxy.stats:
                self.info["proxy_stats"] = self._proxy.stats
                if self._proxy.stats.get("nodelay_failures"):
                    self.info["warnings"].append("the proxy could not set TCP_NODELAY on some sockets")
            self._proxy = None
        if self._netns is not None:
            self._netns.stop()
            self._netns = None

    def __enter__(self) -> "NetworkPath":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_network_path(network_options: Any, delay_ms: float, target_url: str, *,
                      cpu: int | None | str = "auto", seed: int | None = None,
                      calibrate: bool = True) -> NetworkPath:
    """Put an emulated network (one-way ``delay_ms`` each way) in front of ``target_url``."""
    config = link_config(network_options, delay_ms)
    requested = str(_option(network_options, "mode", "proxy") or "proxy")
    if cpu == "auto":
        cpu = default_cpu()
    parts = urlsplit(target_url)
    target = (parts.hostname or "127.0.0.1", parts.port or 80)
    info: dict = {
        "requested_mode": requested,
        "mode": "proxy",
        "delay_ms": config.delay_ms,
        "rtt_ms": 2 * config.delay_ms,
        "jitter_ms": config.jitter_ms,
        "bandwidth_kbps": config.bandwidth_kbps,
        "loss_pct": config.loss_pct,
        "target": f"{target[0]}:{target[1]}",
        "warnings": [],
    }
    netns: NetnsLink | None = None
    if requested == "netem":
        support = detect_netem()
        info["netem"] = {"available": support.available, "reason": support.reason}
        if support.available:
            try:
                netns = NetnsLink(config, target, cpu=cpu).start()
            except Exception as exc:  # any failure: fall back, never fail the run
                info["warnings"].append(f"netem setup failed ({exc}); used the user-space proxy instead")
        else:
            info["warnings"].append(f"netem {support.reason}; used the user-space proxy instead")
    elif requested != "proxy":
        info["warnings"].append(f"unknown network mode {requested!r}; used the user-space proxy")
    else:
        info["netem"] = {"available": None, "reason": "not requested (mode = proxy)"}
    for warning in info["warnings"]:
        _warnings.warn(warning, RuntimeWarning, stacklevel=2)

    if netns is not None:
        assert netns.address is not None
        host, port = netns.address
        info.update(mode="netem", namespace=netns.ns, cpu=cpu, pids=[r.pid for r in netns.relays],
                    loss_model="netem: packet loss, split over the two veth ends")
        path = NetworkPath(f"http://{host}:{port}", info, _netns=netns)
        if calibrate:
            _record_http_calibration(path, target, config)
        return path

    proxy = ProxyProcess(config, target, cpu=cpu, seed=seed).start()
    assert proxy.address is not None
    host, port = proxy.address
    info.update(
        pid=proxy.pid, cpu=proxy.cpu, scheduling=proxy.scheduling, listen=f"{host}:{port}",
        tcp_nodelay="set on both sockets",
        handshake_emulated=config.handshake, loss_model=LOSS_MODEL if config.loss_pct else None,
        placement="proxy pinned to the load generator's core; server core left to the server",
    )
    path = NetworkPath(f"http://{host}:{port}", info, _proxy=proxy)
    if calibrate:
        try:
            info["calibration"] = _calibrate.calibrate(config, cpu=proxy.cpu).as_dict()
        except (OSError, RuntimeError) as exc:
            info["warnings"].append(f"calibration failed: {exc}")
    return path


def _record_http_calibration(path: NetworkPath, target: tuple[str, int], config: LinkConfig) -> None:
    try:
        import statistics
        direct = statistics.median(_calibrate.http_rtts_ms(target))
        parts = urlsplit(path.url)
        through = _calibrate.http_rtts_ms((parts.hostname or "", parts.port or 80))
        path.info["calibration"] = {
            "configured_one_way_ms": config.delay_ms,
            "method": "GET /healthz round trips, through the path minus direct, halved",
            "measured_one_way_p50_ms": round((statistics.median(through) - direct) / 2, 4),
            "measured_one_way_max_ms": round((max(through) - direct) / 2, 4),
        }
    except (OSError, RuntimeError, ValueError) as exc:
        path.info["warnings"].append(f"calibration failed: {exc}")
