"""nginx in the subscribers' path as a point extension (docs/proxy.md).

For a point of a ``[proxy]`` sweep with ``proxy = "nginx"``, :class:`NginxExtension`
adds the server flag of the header sweep (``--no-accel-buffering-header``), puts
nginx in front of the server once it answers (the subscribers connect through it),
samples it as ``proxy``, and adds the proxy columns to the row. The publisher keeps
the server's own URL (like the delay proxy: it stands for the application's back
end), so only subscriber traffic crosses nginx and nginx CPU per message is
subscriber cost; except under HTTP/2 (docs/http2.md): the publisher then speaks h2
too, which the aiohttp servers do not, so it publishes through nginx as well. TLS
points terminate TLS at nginx with the run's certificate (ALPN h2 and http/1.1);
cleartext HTTP/2 points use nginx's h2c port (prior knowledge).

Placement: nginx is pinned to the server's core (procs.plan_affinity's plan). In a
deployment the proxy shares the server's machine, not the clients'; on a two-core
box that means the server's core, so the load generator's core stays the
generator's and its CPU warning keeps its meaning. Both processes are sampled
separately (``server``, ``proxy``), so each one's CPU is its own.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import procs
from ..console import Column, insert_column
from ..measure.metrics import process_stats
from ..runner.extension import PointContext, PointData, PointExtension
from ..runner.outcome import PointFailed
from .nginx import NginxError, NginxProxy, NginxSettings, nginx_version

__all__ = ["NO_ACCEL_FLAG", "NginxExtension", "ROW_FIELDS", "h2_publisher", "path_label",
           "server_args", "summary_fields"]

#: summary.csv columns this extension fills (results.SUMMARY_COLUMNS lists them too).
ROW_FIELDS = ("proxy", "proxy_buffering", "proxy_accel_header", "proxy_gzip", "proxy_cpu_s",
              "proxy_cpu_pct")
#: Server option that drops ``X-Accel-Buffering: no`` from stream responses.
NO_ACCEL_FLAG = "--no-accel-buffering-header"
#: Server option: the Origin check's scheme from nginx's X-Forwarded-Proto.
TRUST_PROTO_FLAG = "--trust-forwarded-proto"
#: Read timeout above the longest a response may stay silent (poll timeout, heartbeat).
_READ_MARGIN_S = 30.0


def server_args(point: Any) -> list[str]:
    """Extra ``python -m servers`` flags for the point: behind nginx the same-origin check
    takes the page's scheme from X-Forwarded-Proto (nginx may terminate TLS), and the
    header sweep."""
    if getattr(point, "proxy", "none") == "none":
        return []
    # The Node reference has no such option (and is measured direct: docs/http2.md).
    args = [TRUST_PROTO_FLAG] if getattr(point, "stack", "python") == "python" else []
    if not getattr(point, "accel_header", True):
        args.append(NO_ACCEL_FLAG)
    return args


def summary_fields(point: Any) -> dict[str, Any]:
    """The point's proxy columns for summary.csv (direct: none, empty buffering)."""
    proxy = getattr(point, "proxy", "none") or "none"
    if proxy == "none":
        return {"proxy": "none", "proxy_buffering": None, "proxy_accel_header": None,
                "proxy_gzip": None}
    return {"proxy": proxy, "proxy_buffering": bool(point.proxy_buffering),
            "proxy_accel_header": bool(point.accel_header),
            "proxy_gzip": bool(getattr(point, "proxy_gzip", False))}


def path_label(row: dict) -> str:
    """The final table's ``path`` cell: direct, or nginx with its settings."""
    if str(row.get("proxy") or "none") == "none":
        return "direct"
    on = lambda key: str(row.get(key)).lower() in ("true", "1")  # noqa: E731
    return (f"{row['proxy']} buf={'on' if on('proxy_buffering') else 'off'}"
            + ("" if not on("proxy_buffering") or on("proxy_accel_header") else " no-accel")
            + (" gzip" if on("proxy_gzip") else ""))


def h2_publisher(point: Any) -> bool:
    """Whether the point's clients speak HTTP/2 through nginx (docs/http2.md): every
    transport but WebSocket, which nginx 1.22 carries as an HTTP/1.1 upgrade only."""
    return getattr(point, "http", "1.1") == "2" and point.transport != "websocket"


def _http_settings(ctx: PointContext) -> dict[str, Any]:
    """nginx's TLS and HTTP/2 settings for the point: TLS points terminate with the run's
    certificate (ALPN h2 under http = 2), cleartext HTTP/2 points get the h2c port."""
    point, settings = ctx.point, {}
    files = ctx.state.get("tls_files") if getattr(point, "tls", False) else None
    if files is not None:
        settings.update(tls_cert=files.cert_file, tls_key=files.key_file)
    if h2_publisher(point):
        settings["http2" if files is not None else "h2c"] = True
        # Every subscription of a connection plus the publisher's streams in flight.
        settings["h2_max_streams"] = max(256, point.streams_per_connection + 64)
    return settings


class NginxExtension(PointExtension):
    """nginx between the subscribers and the server, for the points that ask for it."""

    name = "proxy"

    def server_args(self, point: Any) -> list[str]:
        return server_args(point)

    @contextlib.contextmanager
    def open(self, ctx: PointContext) -> Iterator[None]:
        point = ctx.point
        if getattr(point, "proxy", "none") == "none":
            yield
            return
        if point.proxy != "nginx":
            raise PointFailed(f"nginx: unknown proxy kind {point.proxy!r}")
        directory = Path(tempfile.mkdtemp(prefix="duplexbench-nginx-"))
        server = ctx.scenario.server
        # Above the native poll timeout (30 s) and two heartbeats: nginx never cuts a held
        # poll or a quiet stream (its default of 60 s would, at heartbeat_s = 60).
        settings = NginxSettings(
            buffering=bool(point.proxy_buffering),
            gzip=bool(getattr(point, "proxy_gzip", False)),
            read_timeout_s=max(30.0 + _READ_MARGIN_S, server.heartbeat_s * 2 + _READ_MARGIN_S),
            max_connections=max(1024, 2 * point.clients + 64),
            **_http_settings(ctx),
        )
        cpu = ctx.plan.server if ctx.plan is not None else None
        try:
            # The directory receives nginx.conf, error.log and temp files.
            proxy = NginxProxy(ctx.sub_url, directory, settings, cpu=cpu).start()
        except NginxError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise PointFailed(f"nginx: {exc}") from None
        try:
            procs.track(proxy.pid, "proxy")
            ctx.record("network_paths", {"path": {
                "kind": "nginx", "binary": proxy.binary, "version": nginx_version(proxy.binary),
                "url": proxy.url, "buffering": settings.buffering,
                "accel_header": bool(point.accel_header), "gzip": settings.gzip,
                "read_timeout_s": settings.read_timeout_s, "cpu": cpu,
                "tls": bool(settings.tls_cert), "http2": settings.http2, "h2c": settings.h2c,
                "h2c_url": proxy.h2c_url, "h2_max_streams": settings.h2_max_streams,
                "config": str(proxy.config_path)}})
            ctx.sub_url = proxy.h2c_url or proxy.url
            if h2_publisher(point):  # aiohttp speaks HTTP/1.1 only: h2 publishes go via nginx
                ctx.pub_url = ctx.sub_url
            ctx.pids["proxy"] = proxy.pid
            yield
        finally:
            procs.untrack(proxy.pid)
            proxy.stop()
            shutil.rmtree(directory, ignore_errors=True)

    def contribute(self, ctx: PointContext, row: dict, data: PointData | None) -> dict:
        fields: dict[str, Any] = summary_fields(ctx.point)
        cpu_s = cpu_pct = math.nan
        if data is not None and data.load is not None and getattr(ctx.point, "proxy", "none") != "none":
            stats = process_stats(data.load, "proxy")
            cpu_s, cpu_pct = stats["cpu_s"], stats["cpu_pct"]
        fields.update(proxy_cpu_s=cpu_s, proxy_cpu_pct=cpu_pct)
        return fields

    def table(self, rows: list[dict], columns: list) -> tuple[list[dict], list]:
        if not any(str(r.get("proxy") or "none") != "none" for r in rows):
            return rows, columns
        rows = [{**r, "_path": path_label(r)} for r in rows]  # the console reads cells from rows
        return rows, insert_column(columns, Column("_path", "path", "{}"), after=("transport", "engine"))
