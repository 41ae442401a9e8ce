"""Which load generator measures a point, as a point extension.

A scenario may sweep engines (``engine = ["native", "browser"]``): the point's
engine is the sweep's, else the command line's (``--engine``). The native and
Locust engines are started by the runner itself (runner/generator.py); this
extension starts the browser engine with the scenario's ``[engine]`` options,
fills the row's ``engine`` column, and adds what a browser point must say beside
its figures (publishes that never went out, subscribers that never opened).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..console import Column, insert_column
from ..runner.extension import PointContext, PointData, PointExtension

__all__ = ["EngineExtension", "browser_command", "browser_notes", "engine_of"]


def engine_of(point: Any, default: str) -> str:
    """The point's engine: the scenario's sweep, else the command line's."""
    return getattr(point, "engine", "") or default


def browser_command(spec_path: Path, out_dir: Path, options: dict | None = None) -> list[str]:
    """``python -m duplexbench.engines.browser SPEC OUT`` with the scenario's ``[engine]`` options."""
    options = options or {}
    command = [sys.executable, "-m", "duplexbench.engines.browser", str(spec_path), str(out_dir)]
    if options.get("per_page") is not None:
        command += ["--per-page", str(int(options["per_page"]))]
    if options.get("poll_timeout_s") is not None:
        command += ["--poll-timeout", repr(float(options["poll_timeout_s"]))]
    return command


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


class EngineExtension(PointExtension):
    """The point's load generator: the browser engine's command, the engine column and notes."""

    name = "engine"

    def __init__(self, default: str = "native", options: dict | None = None) -> None:
        self.default = default
        #: The scenario's ``[engine]`` table (per_page, poll_timeout_s for the browser).
        self.options = dict(options or {})

    def loadgen_command(self, ctx: PointContext, spec_path: Path, out_dir: Path) -> list[str] | None:
        if engine_of(ctx.point, self.default) == "browser":
            return browser_command(spec_path, out_dir, self.options)
        return None

    def contribute(self, ctx: PointContext, row: dict, data: PointData | None) -> dict:
        engine = engine_of(ctx.point, self.default)
        if engine != "browser":
            return {"engine": engine}
        # The most TCP connections Chromium held to the origin at once (engines/browser/
        # connections.py): six per origin over HTTP/1.1, one over HTTP/2.
        held = (data.counters if data is not None else {}).get("origin_connections_max")
        return {"engine": engine, "origin_connections": held}

    def notes(self, ctx: PointContext, row: dict, data: PointData | None) -> list[str]:
        return browser_notes(data.counters if data is not None else {})

    def table(self, rows: list[dict], columns: list) -> tuple[list[dict], list]:
        if any(str(r.get("engine") or "native") != "native" for r in rows):
            columns = insert_column(columns, Column("engine", "engine", "{}"))
        return rows, columns
