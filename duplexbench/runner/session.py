"""A run session: one results directory, its meta.json, and the points measured into it.

``start()`` writes meta.json (``running``, with the extensions' entries);
``run_point()`` has one point measured by
:class:`~duplexbench.runner.point_runner.PointRunner`, has its row assembled
(:mod:`~duplexbench.runner.row`: a failed point gets a failed row) and adds it;
``finish()`` writes the final status. The run loop and ``capacity`` share it.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import procs
from ..console import Console, PointProgress, display_path
from ..machine.doctor import require
from ..machine.limits import check_point, loadgen_layout
from ..measure.results import RunWriter
from ..measure.validity import SATURATED_PCT
from ..scenario import LoadPoint, Scenario
from . import row as rows
from .extension import PointContext, PointData, PointExtension
from .outcome import PointFailed, PointResult
from .point_runner import SAMPLE_HZ, PointOutput, PointRunner
from .target import ServerHandle, Target, fetch_json

__all__ = ["LOADGEN_SATURATED_PCT", "SKIP_CALIBRATION_ENV", "Session"]

#: A load generator above this share of its core measures itself, not the server.
LOADGEN_SATURATED_PCT = SATURATED_PCT
#: Set (to anything) by the test suite (tests/conftest.py): its runs check what a run
#: records, not figures, and the ~2.5 s of TCP echo per run is a figure no such test reads.
#: meta.json then says the calibration was skipped, and why.
SKIP_CALIBRATION_ENV = "DUPLEXBENCH_SKIP_CALIBRATION"


def _env_float(name: str) -> float:
    try:
        return float(os.environ.get(name, "0") or 0)
    except ValueError:
        return 0.0


class Session:
    """Runs load points into one results directory (the runner and `capacity` share it)."""

    def __init__(self, scenario: Scenario, run_dir: Path, *, console: Console,
                 engine: str = "native", workers: int = 1, baseline: bool = False,
                 command: str = "run", argv: Sequence[str] = (),
                 target: Target | None = None, loadgen_procs: int | None = None,
                 extensions: Sequence[PointExtension] = ()) -> None:
        self.scenario = scenario
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.console = console
        self.engine = engine
        self.workers = workers
        self.baseline = baseline
        self.command = command
        self.argv = list(argv)
        self.plan = procs.plan_affinity()
        self.layout = loadgen_layout(self.plan.server, loadgen_procs, engine=engine)
        if engine == "locust":  # Locust's workers are its processes (engine-owned pinning)
            self.layout = dataclasses.replace(self.layout, procs=workers,
                                              cores=max(1, min(workers, self.layout.cores)))
        #: LoadSpec fields per point (source addresses), from check_limits().
        self._point_fields: dict[tuple, dict] = {}
        self.results: list[PointResult] = []
        self.writer: RunWriter | None = None
        self.finished = False
        self._first_server_seen = False
        #: What the points have besides server and load generator (duplexbench/extensions.py).
        self.extensions = list(extensions)
        self.points = PointRunner(
            scenario, self.plan, engine=engine, workers=workers, target=target,
            extensions=self.extensions, warn=self._point_warning, on_server=self._note_server,
            spec_extra=self._spec_fields)

    # Parts and limits ----------------------------------------------------------

    def check_parts(self, points: Sequence[LoadPoint], extra: Sequence[str] = ()) -> None:
        """What the points need (nginx, Chromium, ...: machine/doctor.py's NEEDS, plus
        ``extra`` capability keys) against this machine; MissingParts before anything starts."""
        require(points, engine=self.engine, scenario=self.scenario, extra=extra)

    def check_limits(self, points: Sequence[LoadPoint]) -> None:
        """Every point against this machine's limits; LimitError before anything starts."""
        procs.raise_nofile_limit()
        try:
            from clients.spec import LoadSpec

            known = frozenset(f.name for f in dataclasses.fields(LoadSpec))
        except ImportError:
            known = None
        for point in points:
            key = (point.clients, point.transport)
            if key not in self._point_fields:
                self._point_fields[key] = check_point(
                    point.clients, transport=point.transport, layout=self.layout,
                    spec_fields=known)

    def _spec_fields(self, point: LoadPoint) -> dict:
        fields = self.layout.spec_fields()
        if self.engine != "native":  # Locust's processes are its workers (--workers)
            fields.pop("loadgen_procs")
        fields.update(self._point_fields.get((point.clients, point.transport), {}))
        return fields

    # Start and finish ----------------------------------------------------------

    def start(self, *, calibrate: bool = True) -> None:
        soft, hard = procs.raise_nofile_limit()
        meta: dict[str, Any] = {}
        try:
            from ..machine.sysinfo import collect_metadata

            meta.update(collect_metadata())
        except Exception as exc:  # metadata is precious but must not stop a run
            meta.setdefault("warnings", []).append(f"could not collect system metadata: {exc}")
        meta.update(
            run_id=self.run_id,
            command=self.command,
            argv=self.argv,
            scenario={"name": self.scenario.name, "path": self.scenario.path,
                      "parsed": self.scenario.to_dict()},
            engine=self.engine,
            workers=self.workers if self.engine == "locust" else None,
            clock="CLOCK_MONOTONIC",
            baseline=self.baseline,
            affinity={**self.plan.to_meta(), "runner": sorted(os.sched_getaffinity(0))
                      if hasattr(os, "sched_getaffinity") else None},
            sampler={"hz": SAMPLE_HZ, "where": "the runner process (outside the measured ones)",
                     "connections": "psutil net_connections(kind='tcp'); socket fds in "
                                    "/proc/PID/fd once that costs > 2 ms per sample"},
            rlimit_nofile={"soft": soft, "hard": hard},
            loadgen={"procs": self.layout.procs, "cpus": list(self.layout.cpus),
                     "publisher_cpu": self.layout.publisher_cpu, "cores": self.layout.cores,
                     "source_addrs": sorted({a for f in self._point_fields.values()
                                             for a in f.get("source_addrs", ())})},
            gc={"loadgen": "not reported"},
            inject={"delay_ms": _env_float("DUPLEXBENCH_INJECT_DELAY_MS"),
                    "pad_bytes": _env_float("DUPLEXBENCH_INJECT_PAD_BYTES"),
                    "cpu_us": _env_float("DUPLEXBENCH_INJECT_CPU_US")},
        )
        for extension in self.extensions:
            meta.update(extension.meta())
        warnings = list(meta.pop("warnings", []))
        # `latest` belongs to the results folder; a run written elsewhere (--out /tmp/x)
        # must not drop a link into a folder the user did not hand over.
        in_results = self.run_dir.resolve().parent == Path("results").resolve()
        self.writer = RunWriter(self.run_dir, meta, latest=in_results and not self.baseline).start()
        self.console.info(
            f"{self.command}: {self.scenario.name} ({len(self.scenario.transports)} transport(s)), "
            f"engine {self.engine}, results in {display_path(self.run_dir)}"
        )
        if self.plan.warning:
            warnings.append(self.plan.warning)
        else:
            self.console.info(f"pinning: server -> CPU {self.plan.server}, load generator "
                              f"({self.layout.procs} process(es)) -> CPU "
                              f"{','.join(map(str, self.layout.cpus)) or self.plan.loadgen}")
        for text in warnings:
            self.warn(text)
        if calibrate:
            self._calibrate()

    def _calibrate(self) -> None:
        if os.environ.get(SKIP_CALIBRATION_ENV):
            self.writer.meta["calibration"] = {"skipped": f"{SKIP_CALIBRATION_ENV} is set"}
            return
        try:
            from ..machine.calibration import calibrate
        except ImportError:
            return
        try:  # in the scenario's regime: its (first) rate, the server's and the loadgen's cores
            calibration = calibrate(self.scenario.rate[0], self.plan.server, self.plan.loadgen)
        except Exception as exc:
            self.warn(f"TCP echo calibration failed: {exc}")
            return
        self.writer.meta["calibration"] = calibration
        if calibration.get("echo_at_rate_error"):
            self.warn(f"TCP echo at the scenario's rate failed: {calibration['echo_at_rate_error']}")

    def warn(self, text: str) -> None:
        self.console.warn(text)
        if self.writer is not None and text not in self.writer.meta.get("warnings", []):
            self.writer.add_warning(text)

    def _point_warning(self, text: str, console_only: bool = False) -> None:
        if console_only:
            self.console.warn(text)
        else:
            self.warn(text)

    def finish(self, status: str, reason: str = "") -> Path:
        assert self.writer is not None
        self.finished = True
        # The harness's own CPU (sampler, progress, parsing) shares the machine with
        # what it measures: record it so its share can be judged.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.writer.meta["runner_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
        return self.writer.finish(status, reason)

    # One point -------------------------------------------------------------------

    def run_point(self, point: LoadPoint, number: int, total: int) -> PointResult:
        """Measure one point and add its row to the run (a failed point gets a failed row)."""
        assert self.writer is not None
        progress: PointProgress = self.console.point(point.label, number, total)
        point_dir = self.run_dir / "points" / f"{point.index:03d}-{point.transport}-r{point.repeat}"
        point_dir.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix="duplexbench-point-"))
        samples: list[procs.ProcSample] = []
        ctx = PointContext(self.scenario, point, point_dir, plan=self.plan,
                           record=lambda key, entry: self._record(point, key, entry),
                           warn=self.warn)
        samples_df = None
        try:
            try:
                output = self.points.measure(ctx, work_dir, progress, samples)
                data = PointData(output.counters, output.samples, rows.load_frame(point, samples))
                base, samples_df = self._measured(point, point_dir, output, data)
                result_reason, measured = None, True
            except PointFailed as failure:
                data = PointData({}, None, rows.load_frame(point, samples))
                base, result_reason, measured = rows.failed_base(self, point, str(failure)), str(failure), False
            row = rows.assemble(base, ctx, data if measured else None, self.extensions,
                                expect_loss=self.scenario.expect_loss)
        finally:
            progress.close()
            shutil.rmtree(work_dir, ignore_errors=True)
        result = PointResult(point, row, measured=measured,
                             reason=str(row.get("warnings") or "") if measured else result_reason)
        self.writer.add_point(row, samples_df, data.load)
        self.console.point_result(row)
        if not result.measured:
            self.warn(f"{point.label}: point failed: {result.reason}")
        else:
            for text in str(row.get("warnings") or "").split("; "):
                if text:
                    self.warn(f"{point.label}: {text}")
        self.results.append(result)
        return result

    def _note_server(self, server: ServerHandle) -> None:
        """The first server's /healthz says what regression is injected: record it."""
        if self._first_server_seen:
            return
        self._first_server_seen = True
        health = fetch_json(server.url + "/healthz")
        if isinstance(health.get("inject"), dict):
            self.writer.meta["inject"] = health["inject"]

    def _record(self, point: LoadPoint, key: str, entry: dict) -> None:
        """An extension's per-point entry in meta.json's list ``key`` (network_paths, faults)."""
        self.writer.meta.setdefault(key, []).append(
            {"point": point.index, "repeat": point.repeat, "transport": point.transport, **entry})

    def _measured(self, point: LoadPoint, point_dir: Path, output: PointOutput,
                  data: PointData) -> tuple[dict, Any]:
        """The measured point's base row and samples rows; what it says of the run to meta.json."""
        counters = output.counters
        if counters.get("gc") is not None:
            self.writer.meta["gc"] = {"loadgen": counters["gc"]}
        if counters.get("clock"):
            self.writer.meta["clock"] = counters["clock"]
            # A run may sweep engines (native, browser) with different clocks: keep each.
            self.writer.meta.setdefault("clocks", {})[
                str(counters.get("engine") or self.engine)] = counters["clock"]
        try:
            return rows.measured_base(self, point, data)
        except Exception as exc:  # a harness bug must not take the finished points with it
            raise PointFailed(f"could not summarize the point ({type(exc).__name__}: {exc}); "
                              f"counters kept in {display_path(point_dir)}") from exc
