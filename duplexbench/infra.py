"""The runner's hooks for real infrastructure: nginx in the path, browsers as clients.

The point orchestration (point.py, target.py, paths.py, session.py) calls
these few functions and stays unaware of the details:

- :func:`server_args`: extra server flags a point needs (the
  ``X-Accel-Buffering`` sweep);
- :func:`proxy_path`: the subscribers' path through nginx (a ``paths.Path``);
- :func:`engine_of` and :func:`browser_command`: which load generator runs a
  point (a scenario may sweep ``engine = ["native", "browser"]``);
- :func:`row_fields`: the point's summary.csv additions (``engine``,
  ``proxy``, ``proxy_buffering``, ``proxy_accel_header``, ``proxy_gzip``, ``proxy_cpu_s``,
  ``proxy_cpu_pct``) and the browser engine's notes as warnings.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .proxies.point import server_args as _proxy_server_args
from .proxies.point import summary_fields

__all__ = ["ROW_FIELDS", "NginxPath", "browser_command", "browser_notes", "console_table",
           "engine_of", "proxy_path", "row_fields", "server_args"]

#: summary.csv columns added here (results.SUMMARY_COLUMNS holds them, after the others).
ROW_FIELDS = ("proxy", "proxy_buffering", "proxy_accel_header", "proxy_gzip", "proxy_cpu_s",
              "proxy_cpu_pct")
#: Read timeout above the longest a response may stay silent (poll timeout, heartbeat).
_READ_MARGIN_S = 30.0


def server_args(point: Any) -> list[str]:
    return _proxy_server_args(point)


def engine_of(point: Any, default: str) -> str:
    """The point's engine: the scenario's sweep, else the command line's."""
    return getattr(point, "engine", "") or default


def browser_command(spec_path: Path, out_dir: Path, options: dict | None = None) -> list[str]:
    """``python -m duplexbench.browser SPEC OUT`` with the scenario's ``[engine]`` options."""
    options = options or {}
    command = [sys.executable, "-m", "duplexbench.browser", str(spec_path), str(out_dir)]
    if options.get("per_page") is not None:
        command += ["--per-page", str(int(options["per_page"]))]
    if options.get("poll_timeout_s") is not None:
        command += ["--poll-timeout", repr(float(options["poll_timeout_s"]))]
    return command


@dataclass
class NginxPath:
    """Subscribers reach the server through nginx (a ``paths.Path``)."""

    scenario: Any
    cpu: int | None
    record: Callable[[Any, dict], None] = lambda point, info: None

    @contextlib.contextmanager
    def open(self, point: Any, server_url: str) -> Iterator[Any]:
        from . import procs
        from .outcome import PointFailed
        from .paths import OpenPath
        from .proxies.nginx import NginxError
        from .proxies.point import point_proxy

        directory = Path(tempfile.mkdtemp(prefix="duplexbench-nginx-"))
        server = self.scenario.server
        # Above the native poll timeout (30 s) and two heartbeats: nginx never cuts a held
        # poll or a quiet stream (its default of 60 s would, at heartbeat_s = 60).
        read_timeout = max(30.0 + _READ_MARGIN_S, server.heartbeat_s * 2 + _READ_MARGIN_S)
        try:
            with point_proxy(point, server_url, directory, cpu=self.cpu,
                             read_timeout_s=read_timeout, clients=point.clients) as path:
                procs.track(path.pid, "proxy")
                self.record(point, path.info)
                try:
                    yield OpenPath(path.url, {"proxy": path.pid}, path.info)
                finally:
                    procs.untrack(path.pid)
        except NginxError as exc:
            raise PointFailed(f"nginx: {exc}") from None
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def proxy_path(scenario: Any, point: Any, *, cpu: int | None,
               record: Callable[[Any, dict], None] | None = None) -> NginxPath | None:
    """nginx's path for a point that asks for it, else None (the caller picks another)."""
    if getattr(point, "proxy", "none") == "none":
        return None
    return NginxPath(scenario, cpu, record or (lambda p, i: None))


def console_table(rows: list[dict], columns: Any = None) -> tuple[list[dict], list[Any]]:
    """The final table's rows and ``columns`` (default the console's), with engine and path
    columns when a run varies them."""
    from .console import TABLE_COLUMNS, Column

    columns = list(TABLE_COLUMNS if columns is None else columns)
    extra = []
    if any(str(r.get("engine") or "native") != "native" for r in rows):
        extra.append(Column("engine", "engine", "{}"))
    if any(str(r.get("proxy") or "none") != "none" for r in rows):
        extra.append(Column("_path", "path", "{}"))
        rows = [{**r, "_path": _path_label(r)} for r in rows]
    return rows, columns[:1] + extra + columns[1:]


def _path_label(row: dict) -> str:
    if str(row.get("proxy") or "none") == "none":
        return "direct"
    on = lambda key: str(row.get(key)).lower() in ("true", "1")  # noqa: E731
    return (f"{row['proxy']} buf={'on' if on('proxy_buffering') else 'off'}"
            + ("" if not on("proxy_buffering") or on("proxy_accel_header") else " no-accel")
            + (" gzip" if on("proxy_gzip") else ""))


def browser_notes(counters: dict) -> list[str]:
    """What a browser point must say beside its figures (publishes that never went out,
    subscribers that never opened: Chromium's per-origin connection limit)."""
    if counters.get("engine") != "browser":
        return []
    notes: list[str] = []
    scheduled = int(counters.get("scheduled") or 0)
    published = int(counters.get("published") or 0)
    if scheduled and published < scheduled:
        notes.append(
            f"the page published {published} of {scheduled} scheduled messages: the rest "
            "never completed (queued behind the page's own connections: Chromium allows "
            "6 HTTP/1.1 connections per origin)")
    never = int(counters.get("subscribers_never_opened") or 0)
    if never:
        notes.append(f"{never} of {counters.get('clients')} browser subscribers never opened "
                     "(no response headers reached the page: no connection left under "
                     "Chromium's per-origin limit, or an intermediary holding the response)")
    return notes


def row_fields(point: Any, counters: dict | None, load: Any, default_engine: str,
               warnings: str = "") -> dict:
    """The row's engine, proxy columns and warnings (with the browser's notes)."""
    fields: dict[str, Any] = {"engine": engine_of(point, default_engine), **summary_fields(point)}
    cpu_s = cpu_pct = math.nan
    if load is not None and getattr(point, "proxy", "none") != "none":
        from .metrics import process_stats

        stats = process_stats(load, "proxy")
        cpu_s, cpu_pct = stats["cpu_s"], stats["cpu_pct"]
    fields.update(proxy_cpu_s=cpu_s, proxy_cpu_pct=cpu_pct)
    notes = browser_notes(counters or {})
    if notes:
        fields["warnings"] = "; ".join([t for t in [warnings] if t] + notes)
    return fields
