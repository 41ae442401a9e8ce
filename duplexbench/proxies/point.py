"""What the runner asks of the proxy package for one load point.

The runner stays small: it calls :func:`server_args` when it starts the server,
wraps the subscribers' URL in :func:`point_proxy` and adds
:func:`summary_fields` to the point's row. The publisher keeps the server's own
URL (like the delay proxy: it stands for the application's back end), so only
subscriber traffic crosses nginx and nginx CPU per message is subscriber cost.

Placement: nginx is pinned to the server's core (procs.plan_affinity's plan).
In a deployment the proxy shares the server's machine, not the clients'; on a
two-core box that means the server's core, so the load generator's core stays
the generator's and its CPU warning keeps its meaning. Both processes are
sampled separately (``server``, ``proxy``), so each one's CPU is its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .nginx import NginxError, NginxProxy, NginxSettings, nginx_version

__all__ = ["ProxyPath", "point_proxy", "server_args", "summary_fields", "SUMMARY_FIELDS"]

#: summary.csv columns this package adds (results.SUMMARY_COLUMNS lists them too).
SUMMARY_FIELDS = ("proxy", "proxy_buffering", "proxy_accel_header", "proxy_gzip")
#: Server option that drops ``X-Accel-Buffering: no`` from stream responses.
NO_ACCEL_FLAG = "--no-accel-buffering-header"


def server_args(point: Any) -> list[str]:
    """Extra ``python -m servers`` flags for the point (the header sweep)."""
    if getattr(point, "proxy", "none") != "none" and not getattr(point, "accel_header", True):
        return [NO_ACCEL_FLAG]
    return []


def summary_fields(point: Any) -> dict[str, Any]:
    """The point's proxy columns for summary.csv (direct: none, empty buffering)."""
    proxy = getattr(point, "proxy", "none") or "none"
    if proxy == "none":
        return {"proxy": "none", "proxy_buffering": None, "proxy_accel_header": None,
                "proxy_gzip": None}
    return {"proxy": proxy, "proxy_buffering": bool(point.proxy_buffering),
            "proxy_accel_header": bool(point.accel_header),
            "proxy_gzip": bool(getattr(point, "proxy_gzip", False))}


@dataclass
class ProxyPath:
    """Where subscribers connect, and the proxy process to sample (None when direct)."""

    url: str
    pid: int | None = None
    info: dict = field(default_factory=dict)


@contextlib.contextmanager
def point_proxy(point: Any, server_url: str, directory: Path, *, cpu: int | None,
                read_timeout_s: float = 120.0, clients: int = 0) -> Iterator[ProxyPath]:
    """nginx in front of ``server_url`` for the point's lifetime (or the server itself).

    ``directory`` receives nginx.conf, error.log and temp files (keep it: the
    config is the record of what was measured). Raises
    :class:`~duplexbench.proxies.nginx.NginxError` when nginx cannot start.
    """
    if getattr(point, "proxy", "none") == "none":
        yield ProxyPath(server_url)
        return
    if point.proxy != "nginx":
        raise NginxError(f"unknown proxy kind {point.proxy!r}")
    settings = NginxSettings(
        buffering=bool(point.proxy_buffering),
        gzip=bool(getattr(point, "proxy_gzip", False)),
        read_timeout_s=read_timeout_s,
        max_connections=max(1024, 2 * clients + 64),
    )
    Path(directory).mkdir(parents=True, exist_ok=True)
    proxy = NginxProxy(server_url, Path(directory), settings, cpu=cpu).start()
    try:
        yield ProxyPath(proxy.url, proxy.pid, {
            "kind": "nginx", "binary": proxy.binary, "version": nginx_version(proxy.binary),
            "url": proxy.url,
            "buffering": settings.buffering, "accel_header": bool(point.accel_header),
            "gzip": settings.gzip,
            "read_timeout_s": settings.read_timeout_s, "cpu": cpu,
            "config": str(proxy.config_path)})
    finally:
        proxy.stop()
