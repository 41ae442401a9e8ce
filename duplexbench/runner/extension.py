"""One way to extend a point: the interface every optional part of a point plugs into.

A point is a server, a load generator and a sampler. Anything else it can have (nginx in
the path, an emulated network, faults, a browser engine, TLS; next the HTTP version, a
broker) is a :class:`PointExtension`. The runner calls its hooks at fixed places of every
point, as Locust fires events and pytest calls hooks, so the runner never learns a
feature's details and each feature lives in one place (its package's ``extension.py``;
the list a run uses is :mod:`duplexbench.extensions`).

The hooks of one point, in the order they are called (:mod:`~duplexbench.runner.point_runner`):

1. ``server_args(point)`` and ``spec_fields(point)``: what the extension adds to the
   server's command line and to the load generator's LoadSpec;
2. ``open(ctx)``, a context manager: set up before and tear down after the point. The
   extensions of stage ``BEFORE_SERVER`` open before the server starts (certificates, a
   broker), those of stage ``AFTER_SERVER`` once it answers (a proxy or network path in
   front of it, faults that need it); tear-down runs in reverse, whatever happened;
3. ``loadgen_command(ctx, spec_path, out_dir)``: the first extension that returns a command
   line starts the load generator (a browser engine); else the native or Locust engine;
4. while the load runs: ``on_sampling(ctx, sampler)`` once the sampler exists,
   ``on_phase(ctx, phase)`` per load-generator phase; ``ctx.check_alive`` may be replaced
   (a planned restart is not a crash);
5. the summary row, assembled in one place (:mod:`~duplexbench.runner.row`): first every
   extension's ``contribute(ctx, row, data)`` (columns, in the order of the list), then every
   extension's ``notes(ctx, row, data)`` (warnings); ``data`` is None for a failed point.

Run-level: ``meta()`` (entries for meta.json at the start) and ``table(rows, columns)``
(the final table's columns). Every hook has a do-nothing default: an extension
overrides only what it needs.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..scenario import LoadPoint

__all__ = ["PointContext", "PointData", "PointExtension", "Stage"]


class Stage(enum.IntEnum):
    """When an extension's ``open`` runs relative to the server."""

    BEFORE_SERVER = 0
    AFTER_SERVER = 1


@dataclass
class PointContext:
    """What one point's extensions share with the runner while it runs.

    Extensions read it and fill in what they provide: a path sets ``sub_url``, names its
    helper processes in ``pids`` and may offer ``cut``; faults replace ``check_alive``.
    """

    scenario: Any
    point: LoadPoint
    point_dir: Path
    #: The run's cores (procs.AffinityPlan): ``server``, ``loadgen``.
    plan: Any = None
    #: Extra flags for a server the harness starts (every extension's ``server_args``).
    server_args: list[str] = field(default_factory=list)
    #: CA that verifies the server's certificate when it serves https ("" = none / system).
    ca_file: str = ""
    #: The server, once it answers (runner/target.py's ServerHandle).
    server: Any = None
    #: Where the subscribers connect: the server's URL unless a path stands in between.
    sub_url: str = ""
    #: Transport tcp behind a path: HOST:PORT of the path in front of the TCP listener
    #: (LoadSpec ``sub_tcp``); "" = the listener itself, found from sub_url's /healthz.
    sub_tcp: str = ""
    #: Where the publisher connects: always the server itself (the application's side).
    pub_url: str = ""
    #: Helper processes to sample, by name (``proxy``).
    pids: dict[str, int] = field(default_factory=dict)
    #: Closes every connection on the subscribers' path at once (the cut fault); None if none.
    cut: Callable[[], None] | None = None
    #: Raises PointFailed when the server died; an extension may stand in for it.
    check_alive: Callable[[], None] = lambda: None
    #: Per-point state of the extensions, by extension name.
    state: dict[str, Any] = field(default_factory=dict)
    #: ``record(key, entry)`` appends ``entry`` (with the point's identity) to meta.json's list ``key``.
    record: Callable[[str, dict], None] = lambda key, entry: None
    #: ``warn(text)`` shows a warning and keeps it in meta.json.
    warn: Callable[[str], None] = lambda text: None


@dataclass
class PointData:
    """What a measured point produced, for the row: the load generator's files and the samples."""

    counters: dict
    #: The load generator's samples.parquet as written (one row per first delivery).
    samples: pd.DataFrame | None
    #: The point's process series (load/NNN-*.parquet rows).
    load: pd.DataFrame | None


class PointExtension:
    """Base class of the extensions; see the module doc for when each hook runs."""

    #: Short name (state key, meta.json); unique in a run.
    name: str = ""
    stage: Stage = Stage.AFTER_SERVER

    # Run level --------------------------------------------------------------------

    def meta(self) -> dict:
        """Entries for meta.json when the run starts."""
        return {}

    def table(self, rows: list[dict], columns: list) -> tuple[list[dict], list]:
        """The final table's rows and columns (add a column when the run varies what it shows)."""
        return rows, columns

    # Per point ---------------------------------------------------------------------

    def server_args(self, point: LoadPoint) -> list[str]:
        """Extra ``python -m servers`` flags for this point."""
        return []

    def spec_fields(self, point: LoadPoint) -> dict:
        """Extra LoadSpec fields for this point's load generator."""
        return {}

    @contextlib.contextmanager
    def open(self, ctx: PointContext) -> Iterator[None]:
        """Set up around the point (stage decides: before the server, or once it answers)."""
        yield

    def loadgen_command(self, ctx: PointContext, spec_path: Path, out_dir: Path) -> list[str] | None:
        """The load generator's command line when this extension provides the engine."""
        return None

    def on_sampling(self, ctx: PointContext, sampler: Any) -> None:
        """The sampler runs (new processes can be added to it)."""

    def on_phase(self, ctx: PointContext, phase: str) -> None:
        """The load generator entered ``phase`` (connect, warmup, measure, drain)."""

    # The row -----------------------------------------------------------------------

    def contribute(self, ctx: PointContext, row: dict, data: PointData | None) -> dict:
        """Columns for the point's row (``data`` None: the point failed). ``row`` is what
        is assembled so far; the returned dict updates it."""
        return {}

    def notes(self, ctx: PointContext, row: dict, data: PointData | None) -> list[str]:
        """Warnings the row must carry (added after every extension's columns)."""
        return []
