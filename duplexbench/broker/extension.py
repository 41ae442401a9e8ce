"""Workers behind a broker as a point extension: Redis per point, the workers' flags, the figures.

For a point with ``[server] broker = "redis"`` (``LoadPoint.brokered``),
:class:`WorkersExtension` starts the suite's Redis before the server
(:class:`~duplexbench.broker.redis.RedisProcess`: its own port and data
directory, nothing from an earlier point), gives the server ``--workers N
--broker redis --redis-url URL``, samples Redis as process ``broker``, scrapes
every worker's ``/metrics`` when the measurement starts and when the drain
starts (:mod:`.window`), and stops Redis after the server. Every point gets the
``workers`` and ``broker`` columns (1 and "none" for the one-process server) and
the memory each subscriber connection added; a brokered point also gets the
broker's CPU and the latency split at the broker.

Placement (docs/scaleout.md): the server side keeps ONE core whatever its
shape. The parent, every worker (``--worker-cpus``: re-applied when a worker is
restarted) and Redis are pinned to the server's core, the load generator keeps
its own. So one process and two workers behind Redis are compared on the same
hardware budget, and the difference in CPU per delivered message is what the
broker and the second process cost, not a second core's worth of capacity.
The row's ``server_core_cpu_pct`` (workers + Redis) judges the server side's
saturation (measure/validity.py). meta.json ``server_workers`` records, per point, the
cores each process was actually allowed (read back from the kernel).

An outside server (``--server-url``) is not started here: its ``/healthz``
says how many workers it runs (``"workers"``, ``"broker"``), which the row
records and the scrapes use. Its broker is not ours: no broker CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pandas as pd
import psutil

from ..console import Column, insert_column
from ..measure.metrics import process_stats
from ..measure.validity import classify
from ..runner.extension import PointContext, PointData, PointExtension, Stage
from ..runner.outcome import PointFailed
from .redis import DEFAULT_BINARY, RedisError, RedisProcess, redis_version
from .scrape import WorkerMetrics, scrape_workers
from .window import BrokerWindow, window

__all__ = ["PLACEMENT", "ROW_FIELDS", "WorkersExtension", "connection_memory_kib", "topology_label"]

#: Columns this extension adds to every row (after the standard ones).
ROW_FIELDS = ("broker_cpu_s", "broker_cpu_pct", "server_core_cpu_pct", "server_kib_per_conn",
              "broker_transit_p50_ms", "broker_transit_p99_ms", "broker_transit_mean_ms",
              "broker_publish_p50_ms", "broker_publish_p99_ms", "broker_reads_per_msg",
              "worker_restarts")
#: meta.json ``broker.placement``: the rule, in words.
PLACEMENT = ("the server side keeps one core: the server's parent, every worker "
             "(--worker-cpus) and Redis are pinned to the server's core; the load generator "
             "keeps its own core(s). CPU per delivered message is then compared on the same "
             "hardware budget between one process and N workers behind Redis.")
#: Seconds a scrape of every worker's /metrics may take (fresh connections until each answered).
SCRAPE_TIMEOUT_S = 10.0
#: Fewest subscribers for a per-connection memory figure.
MIN_CONNECTIONS = 10

_NAN = float("nan")


def topology_label(workers: Any, broker: Any) -> str:
    """``1`` for the one-process server, ``2+redis`` for two workers behind Redis."""
    try:
        count = int(float(workers))
    except (TypeError, ValueError):
        return ""
    broker = str(broker or "none")
    return f"{count}" if broker in ("none", "nan") else f"{count}+{broker}"


def connection_memory_kib(load: pd.DataFrame | None, clients: int, process: str = "server") -> float:
    """KiB of RSS each subscriber connection added while the subscribers connected.

    From the ``connect`` phase of ``process``'s samples (every process of its tree, so
    every worker): (RSS at the phase's last sample - at its first) / ``clients``. The load
    generator connects every subscriber before that phase ends and publishes nothing before
    it does, so what grew is connections (and their topic's state), not retained messages,
    and no subscriber sweep is needed. The subscriber count, not the sampled socket count,
    is the divisor: counting sockets is rationed per tick (procs/sampler.py) and may lag.
    NaN with fewer than MIN_CONNECTIONS subscribers (pages and allocator arenas would
    dominate) or without two samples of the phase.
    """
    if clients < MIN_CONNECTIONS or load is None or not len(load) \
            or not {"process", "phase", "rss_mib", "t_s"} <= set(load):
        return _NAN
    rows = load[(load["process"] == process) & (load["phase"] == "connect")].sort_values("t_s")
    rows = rows[rows["rss_mib"].notna()]
    if len(rows) < 2:
        return _NAN
    grown = float(rows["rss_mib"].iloc[-1] - rows["rss_mib"].iloc[0])
    return max(grown, 0.0) * 1024 / clients


class _Scrape:
    """One scrape of every worker, in a thread (the runner's event loop must not wait on it)."""

    def __init__(self, url: str, workers: int, ca_file: str) -> None:
        self.result: dict[int, WorkerMetrics] | None = None
        self.error = ""
        self._thread = threading.Thread(target=self._run, args=(url, workers, ca_file),
                                        name="duplexbench-scrape", daemon=True)
        self._thread.start()

    def _run(self, url: str, workers: int, ca_file: str) -> None:
        try:
            self.result = scrape_workers(url, workers, timeout=SCRAPE_TIMEOUT_S, ca_file=ca_file)
        except Exception as exc:  # a worker that never answers is a note, not a crash
            self.error = f"{type(exc).__name__}: {exc}"

    def join(self) -> None:
        self._thread.join(SCRAPE_TIMEOUT_S + 5.0)


class _PointState:
    """What one point's extension keeps between hooks."""

    def __init__(self, workers: int, broker: str) -> None:
        self.workers = workers
        self.broker = broker
        self.redis: RedisProcess | None = None  # None: no broker, or an outside server's
        self.scrapes: dict[str, _Scrape] = {}
        self.record: dict[str, Any] = {"workers": workers, "broker": broker}

    def join(self) -> None:
        for scrape in self.scrapes.values():
            scrape.join()

    def window(self) -> tuple[BrokerWindow | None, str]:
        """The broker window between the measure and drain scrapes, or why there is none."""
        self.join()
        start, end = self.scrapes.get("measure"), self.scrapes.get("drain")
        if start is None or end is None:
            return None, "the measurement's start and end were not both scraped"
        for phase, scrape in (("measure", start), ("drain", end)):
            if scrape.result is None:
                return None, f"/metrics at the {phase} phase: {scrape.error or 'no answer'}"
        return window(start.result, end.result), ""


def _healthz(url: str, ca_file: str) -> dict:
    """The server's /healthz ({} when it does not answer: the point's own checks say why)."""
    context = ssl.create_default_context(cafile=ca_file or None) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=3.0, context=context) as response:
            data = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _affinity(pid: int) -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return None


class WorkersExtension(PointExtension):
    """``[server] workers`` / ``broker`` of a scenario, point by point (see the module doc)."""

    name = "workers"
    stage = Stage.BEFORE_SERVER

    def __init__(self, scenario: Any, *, binary: str | None = None) -> None:
        server = getattr(scenario, "server", None)
        #: Whether any point of the run is brokered (Redis's version goes to meta.json).
        self.brokered = "redis" in tuple(getattr(server, "broker", ()) or ())
        self.binary = binary

    def meta(self) -> dict:
        if not self.brokered:
            return {}
        entry: dict[str, Any] = {"kind": "redis", "binary": self.binary or DEFAULT_BINARY,
                                 "placement": PLACEMENT}
        try:
            entry["version"] = redis_version(self.binary)
        except (RedisError, OSError) as exc:  # every brokered point will fail and say why
            entry["version"], entry["error"] = None, str(exc)
        return {"broker": entry}

    # Per point -----------------------------------------------------------------

    @contextlib.contextmanager
    def open(self, ctx: PointContext) -> Iterator[None]:
        point = ctx.point
        state = _PointState(point.workers, point.broker)
        ctx.state[self.name] = state
        if not point.brokered:
            yield
            return
        if point.broker != "redis":
            raise PointFailed(f"broker {point.broker!r}: only 'redis' is known")
        cpu = ctx.plan.server if ctx.plan is not None else None
        redis = RedisProcess(cpu=cpu, binary=self.binary)
        try:
            redis.start()  # a fresh data directory per point: no point inherits another's topics
        except RedisError as exc:
            raise PointFailed(f"Redis did not start: {exc}") from None
        state.redis = redis
        try:
            ctx.server_args += ["--workers", str(point.workers), "--broker", "redis",
                                "--redis-url", redis.url]
            if cpu is not None:  # pinned again by the parent when it restarts a worker
                ctx.server_args += ["--worker-cpus", str(cpu)]
            ctx.pids["broker"] = redis.pid
            state.record.update(redis={"url": redis.url, "pid": redis.pid, "cpu": cpu},
                                server_cpu=cpu, worker_cpus=[cpu] if cpu is not None else None)
            yield
        finally:
            state.join()
            if redis.data_dir is not None and (redis.data_dir / "redis.log").exists():
                with contextlib.suppress(OSError):
                    shutil.copyfile(redis.data_dir / "redis.log", ctx.point_dir / "redis.log")
            redis.stop()

    def on_sampling(self, ctx: PointContext, sampler: Any) -> None:
        state: _PointState | None = ctx.state.get(self.name)
        server = ctx.server
        if state is None or server is None:
            return
        if server.process is None:  # an outside server: its /healthz says what it runs
            health = _healthz(server.url, ctx.ca_file)
            try:
                state.workers = int(health.get("workers", 1))
            except (TypeError, ValueError):
                state.workers = 1
            state.broker = str(health.get("broker", "none"))
            state.record.update(workers=state.workers, broker=state.broker, source="/healthz")
        if state.broker == "none" or server.pid is None:
            return
        try:  # the cores the kernel actually allows each process (not what was asked)
            children = psutil.Process(server.pid).children()
        except psutil.Error:
            children = []
        state.record["affinity"] = {
            "server": _affinity(server.pid),
            "workers": {str(c.pid): _affinity(c.pid) for c in children},
            "redis": _affinity(state.redis.pid) if state.redis is not None else None,
        }

    def on_phase(self, ctx: PointContext, phase: str) -> None:
        state: _PointState | None = ctx.state.get(self.name)
        if state is None or state.broker == "none" or phase not in ("measure", "drain"):
            return
        url = ctx.pub_url or (ctx.server.url if ctx.server is not None else "")
        if url and phase not in state.scrapes:
            state.scrapes[phase] = _Scrape(url, state.workers, ctx.ca_file)

    # The row -------------------------------------------------------------------

    def contribute(self, ctx: PointContext, row: dict, data: PointData | None) -> dict:
        state: _PointState | None = ctx.state.get(self.name)
        point = ctx.point
        workers = state.workers if state is not None else point.workers
        broker = state.broker if state is not None else point.broker
        fields: dict[str, Any] = {"workers": workers, "broker": broker,
                                  **dict.fromkeys(ROW_FIELDS, _NAN)}
        if data is None or state is None or broker == "none":
            if data is not None:
                fields["server_kib_per_conn"] = connection_memory_kib(data.load, point.clients)
            if state is not None and broker != "none":
                ctx.record("server_workers", state.record)
            return fields
        fields["server_kib_per_conn"] = connection_memory_kib(data.load, point.clients)
        if state.redis is not None:
            stats = process_stats(data.load, "broker")
            fields.update(broker_cpu_s=stats["cpu_s"], broker_cpu_pct=stats["cpu_pct"])
            if ctx.plan is not None and ctx.plan.server is not None:  # Redis shares the core
                fields["server_core_cpu_pct"] = (_float(row.get("server_cpu_pct"))
                                                 + _float(stats["cpu_pct"]))
        measured, why = state.window()
        state.record["window"] = why or _window_record(measured)
        if measured is not None:
            sent = _float(row.get("sent"))
            fields.update(
                broker_transit_p50_ms=measured.quantile_ms("transit", 0.5),
                broker_transit_p99_ms=measured.quantile_ms("transit", 0.99),
                broker_transit_mean_ms=measured.mean_ms("transit"),
                broker_publish_p50_ms=measured.quantile_ms("publish", 0.5),
                broker_publish_p99_ms=measured.quantile_ms("publish", 0.99),
                broker_reads_per_msg=(measured.messages_read / sent if sent > 0 else _NAN),
                worker_restarts=len(measured.restarted),
            )
        ctx.record("server_workers", state.record)
        if not math.isnan(fields["server_core_cpu_pct"]):
            # Judged again with Redis's share of the core (measure/validity.py).
            judged = classify({**row, **fields}, expect_loss=ctx.scenario.expect_loss)
            fields.update(validity=judged.validity, validity_notes=judged.notes)
        return fields

    def notes(self, ctx: PointContext, row: dict, data: PointData | None) -> list[str]:
        state: _PointState | None = ctx.state.get(self.name)
        if data is None or state is None or state.broker == "none":
            return []
        notes = []
        measured, why = state.window()
        if measured is None:
            notes.append(f"broker figures not measured: {why}")
        elif measured.restarted or measured.gone:
            notes.append(
                f"{len(measured.restarted)} worker(s) restarted during the measurement: the "
                "broker figures miss what the ended worker(s) observed after the first scrape")
        return notes

    def table(self, rows: list[dict], columns: list) -> tuple[list[dict], list]:
        """A ``workers`` column when some point ran other than one process without a broker."""
        labels = [topology_label(r.get("workers"), r.get("broker")) for r in rows]
        if all(label in ("1", "") for label in labels):
            return rows, columns
        rows = [{**r, "_workers": label} for r, label in zip(rows, labels)]
        return rows, insert_column(columns, Column("_workers", "workers", "{}"),
                                   after=("transport", "engine", "_path"))


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return _NAN


def _window_record(measured: BrokerWindow | None) -> dict:
    if measured is None:
        return {}
    return {"workers_at_start": measured.workers_before, "workers_at_end": measured.workers_after,
            "restarted": list(measured.restarted), "gone": list(measured.gone),
            "transit_count": measured.transit.count if measured.transit else 0,
            "publish_count": measured.publish.count if measured.publish else 0,
            "messages_read": measured.messages_read}
