"""`python -m duplexbench run SCENARIO.toml`: measure every load point of a scenario.

One load point at a time, never two transports at once (pyperf's rule: one
worker at a time): a fresh server process pinned to one core, a fresh load
generator pinned to the other, both sampled from *this* process at 20 Hz, then
both stopped and their output turned into one summary row. A fresh server per
point means no point inherits another's connections, topics or heap.

What can go wrong is part of the design. A crashed server or load generator
makes a *failed* point with the reason (its last lines of output), and the run
goes on; three failures in a row stop it. Ctrl-C or SIGTERM stop the children,
keep the finished points and mark the run ``incomplete`` (exit 130). A run never
ends with a meta.json that says ``complete`` unless every point produced a row.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import math
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import procs
from .console import Console, PointProgress, display_path
from .contract import Transport
from .results import LOAD_COLUMNS, SUMMARY_COLUMNS, RunWriter, new_run_id
from .scenario import LoadPoint, Scenario, ScenarioError, load_scenario
from .serverproc import ServerError, ServerProcess

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LOST",
    "EXIT_OK",
    "LOADGEN_SATURATED_PCT",
    "MAX_CONSECUTIVE_FAILURES",
    "PointResult",
    "Session",
    "build_parser",
    "loadgen_command",
    "main",
    "make_spec",
    "prepare_scenario",
    "run_session",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_LOST = 3  # messages lost where the scenario expects none
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"

#: A run gives up after this many failed points in a row: the cause is not the
#: load (a missing module, a broken build) and more attempts only add noise.
MAX_CONSECUTIVE_FAILURES = 3
#: Process sampling rate; DESIGN.md asks >= 10 Hz, 20 Hz leaves margin for a late tick.
SAMPLE_HZ = 20.0
#: Seconds of slack after the expected end of a point before the loadgen is declared stuck.
STUCK_GRACE_S = 30.0
#: Bytes of a child's stderr kept in the run directory (the tail is what explains a crash).
STDERR_KEEP_BYTES = 64 * 1024
#: A load generator above this share of its core measures itself, not the server.
LOADGEN_SATURATED_PCT = 90.0

_PHASE_SECONDS = {"warmup": "warmup_s", "measure": "duration_s", "drain": "drain_s"}


# ---------------------------------------------------------------------------
# One point's outcome


@dataclass(frozen=True)
class PointResult:
    """What one load point produced; ``row`` is the summary.csv row written."""

    point: LoadPoint
    row: dict
    #: False when the point produced no measurement (a crash, a timeout).
    measured: bool
    reason: str = ""

    @property
    def status(self) -> str:
        return str(self.row.get("status") or "ok")

    @property
    def ok(self) -> bool:
        """Measured without client errors (lost messages are judged separately)."""
        return self.measured and self.status in ("ok", "lost")

    @property
    def lost(self) -> int:
        value = _num(self.row.get("lost"))
        return int(value) if value is not None else 0


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


class _PointFailed(Exception):
    """A point could not be measured; the message is the reason recorded."""


# ---------------------------------------------------------------------------
# Loadgen plumbing


def loadgen_command(engine: str, spec_path: Path, out_dir: Path, workers: int) -> list[str]:
    """The engine's CLI (DESIGN.md: both engines offer ``SPEC.json OUT_DIR``)."""
    if engine == "native":
        return [sys.executable, "-m", "clients.loadgen", str(spec_path), str(out_dir)]
    if engine == "locust":
        return [sys.executable, "-m", "duplexbench.locust_engine", str(spec_path), str(out_dir),
                "--workers", str(workers)]
    raise ValueError(f"unknown engine {engine!r}")


def make_spec(scenario: Scenario, point: LoadPoint, *, sub_url: str, pub_url: str,
              topic_prefix: str) -> Any:
    """The LoadSpec for one point (clients/spec.py), built from the scenario."""
    from clients.spec import LoadSpec  # imported late: the runner must start without clients

    values = {
        "transport": point.transport,
        "sub_url": sub_url,
        "pub_url": pub_url,
        "pattern": scenario.pattern,
        "clients": point.clients,
        "topics": scenario.topics,
        "topic_prefix": topic_prefix,
        "rate": point.rate,
        "payload_bytes": point.payload_bytes,
        "upstream": scenario.upstream,
        "arrival": scenario.arrival,
        "seed": scenario.seed + point.index,  # a fresh but reproducible schedule per point
        "warmup_s": scenario.warmup_s,
        "duration_s": scenario.duration_s,
        "drain_s": scenario.drain_s,
        "keepalive": point.keepalive,
        "max_batch": scenario.longpoll.max_batch,
        "progress_interval_s": 0.5,
    }
    known = {f.name for f in dataclasses.fields(LoadSpec)}
    return LoadSpec(**{k: v for k, v in values.items() if k in known})


def _spec_json(spec: Any) -> str:
    text = spec.to_json()
    return text.decode() if isinstance(text, bytes) else text


def _tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - 8192))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _truncate_head(path: Path, keep: int = STDERR_KEEP_BYTES) -> None:
    """Keep only the last ``keep`` bytes of a log: a debugging aid must stay small."""
    try:
        if path.stat().st_size <= keep:
            return
        with open(path, "rb") as file:
            file.seek(-keep, os.SEEK_END)
            data = file.read()
        path.write_bytes(b"[... truncated ...]\n" + data)
    except OSError:
        pass


def _read_lines(stream: Any, out: "queue.Queue[str | None]") -> None:
    for line in stream:
        out.put(line)
    out.put(None)  # EOF: the load generator closed stdout (it is exiting)


def _stop_server(server: ServerProcess | None) -> None:
    if server is None or server.process is None:
        return
    try:
        import psutil

        descendants = psutil.Process(server.pid).children(recursive=True)
    except Exception:
        descendants = []
    server.stop(timeout=5.0)  # graceful first: SIGTERM closes sockets properly
    for child in descendants:
        procs.kill_tree(child.pid, timeout=1.0)
    procs.untrack(server.pid)


def _fetch_json(url: str, timeout: float = 2.0) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.loads(response.read().decode("utf-8"))
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _failed_row(session: "Session", point: LoadPoint, reason: str) -> dict:
    """A summary row that cannot be mistaken for a measurement: figures empty, status failed."""
    row: dict[str, Any] = {column: None for column in SUMMARY_COLUMNS}
    scenario = session.scenario
    row.update(
        run_id=session.run_id, scenario=scenario.name, engine=session.engine,
        transport=point.transport, point=point.index, repeat=point.repeat,
        clients=point.clients, rate_msgs_s=point.rate, payload_bytes=point.payload_bytes,
        delay_ms=point.delay_ms, keepalive=point.keepalive, pattern=scenario.pattern,
        upstream=scenario.upstream, duration_s=scenario.duration_s,
        status="failed", warnings=reason,
    )
    return row


# ---------------------------------------------------------------------------
# A session: one results directory, any number of points


class Session:
    """Runs load points into one results directory (the runner and `capacity` share it).

    ``start()`` writes meta.json (``running``); ``run_point()`` measures one
    point and adds its row; ``finish()`` writes the final status.
    """

    def __init__(self, scenario: Scenario, run_dir: Path, *, console: Console,
                 engine: str = "native", workers: int = 1, baseline: bool = False,
                 command: str = "run", argv: Sequence[str] = ()) -> None:
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
        self.results: list[PointResult] = []
        self.writer: RunWriter | None = None
        self.finished = False
        self._first_server_seen = False
        #: Processes sampled besides server and loadgen (the network proxy).
        self._extra_targets: dict[str, int] = {}

    # Start and finish ----------------------------------------------------------

    def start(self, *, calibrate: bool = True) -> None:
        soft, hard = procs.raise_nofile_limit()
        meta: dict[str, Any] = {}
        try:
            from .sysinfo import collect_metadata

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
            gc={"loadgen": "not reported"},
            inject={"delay_ms": _env_float("DUPLEXBENCH_INJECT_DELAY_MS"),
                    "pad_bytes": _env_float("DUPLEXBENCH_INJECT_PAD_BYTES")},
        )
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
            self.console.info(f"pinning: server -> CPU {self.plan.server}, "
                              f"load generator -> CPU {self.plan.loadgen}")
        for text in warnings:
            self.warn(text)
        if calibrate:
            self._calibrate()

    def _calibrate(self) -> None:
        try:
            from .calibration import measure_tcp_echo
        except ImportError:
            return
        try:
            self.writer.meta["calibration"] = measure_tcp_echo()
        except Exception as exc:
            self.warn(f"TCP echo calibration failed: {exc}")

    def warn(self, text: str) -> None:
        self.console.warn(text)
        if self.writer is not None and text not in self.writer.meta.get("warnings", []):
            self.writer.add_warning(text)

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
        progress = self.console.point(point.label, number, total)
        point_dir = self.run_dir / "points" / f"{point.index:03d}-{point.transport}-r{point.repeat}"
        point_dir.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix="duplexbench-point-"))
        samples: list[procs.ProcSample] = []
        try:
            try:
                row, samples_df, load_df = self._measure(point, point_dir, work_dir, progress, samples)
                result = PointResult(point, row, measured=True,
                                     reason=str(row.get("warnings") or ""))
            except _PointFailed as failure:
                reason = str(failure)
                row = _failed_row(self, point, reason)
                load_df = self._load_frame(point, samples)
                samples_df = None
                result = PointResult(point, row, measured=False, reason=reason)
        finally:
            progress.close()
            shutil.rmtree(work_dir, ignore_errors=True)
        extra = self._runner_warnings(row, load_df)
        if extra:  # into the row too: summary.csv must carry what the terminal said
            row["warnings"] = "; ".join([t for t in [row.get("warnings") or ""] if t] + extra)
        self.writer.add_point(row, samples_df, load_df)
        self.console.point_result(row)
        if not result.measured:
            self.warn(f"{point.label}: point failed: {result.reason}")
        else:
            for text in str(row.get("warnings") or "").split("; "):
                if text:
                    self.warn(f"{point.label}: {text}")
        self.results.append(result)
        return result

    def _measure(self, point: LoadPoint, point_dir: Path, work_dir: Path,
                 progress: PointProgress, samples: list) -> tuple[dict, Any, Any]:
        scenario = self.scenario
        server: ServerProcess | None = None
        loadgen: procs.Child | None = None
        sampler: procs.Sampler | None = None
        stderr_path = point_dir / "loadgen.stderr"
        server_log = point_dir / "server.log"
        try:
            server = ServerProcess(Transport(point.transport).server_mount,
                                   args=scenario.server.to_args(), cpu=self.plan.server)
            try:
                server.start()
            except ServerError as exc:
                raise _PointFailed(f"server did not start: {_last_lines(str(exc))}") from None
            procs.track(server.pid, "server")
            self._note_server(server)
            with self._network_path(point, server.url) as sub_url:
                spec = make_spec(scenario, point, sub_url=sub_url, pub_url=server.url,
                                 topic_prefix=f"{scenario.name[:24]}-p{point.index}")
                spec_path = point_dir / "spec.json"
                spec_path.write_text(_spec_json(spec), encoding="utf-8")
                out_dir = work_dir / "out"
                out_dir.mkdir()
                with open(stderr_path, "w", encoding="utf-8") as stderr:
                    loadgen = procs.spawn(
                        loadgen_command(self.engine, spec_path, out_dir, self.workers),
                        name="loadgen", cpu=self.plan.loadgen,
                        stdout=subprocess.PIPE, stderr=stderr,
                    )
                sampler = procs.Sampler({"server": server.pid, "loadgen": loadgen.pid,
                                         **self._extra_targets}, hz=SAMPLE_HZ).start()
                self._follow(point, server, loadgen, sampler, progress, stderr_path)
                samples[:] = sampler.stop()
                code = loadgen.wait(15.0)
                if code != 0:
                    raise _PointFailed(f"load generator exited with code {code}: "
                                       f"{_tail(stderr_path) or '(no output)'}")
        except subprocess.TimeoutExpired:
            raise _PointFailed("load generator did not exit after 'done'") from None
        finally:
            with procs.shielded():
                if sampler is not None:
                    samples[:] = sampler.stop()
                if loadgen is not None:
                    loadgen.stop(timeout=3.0)
                if server is not None:
                    server_output = "\n".join(server.output)
                    _stop_server(server)
                    server_log.write_text(server_output + "\n", encoding="utf-8")
                _truncate_head(stderr_path)
        return self._summarize(point, point_dir, out_dir, samples)

    def _follow(self, point: LoadPoint, server: ServerProcess, loadgen: procs.Child,
                sampler: procs.Sampler, progress: PointProgress, stderr_path: Path) -> None:
        """Read loadgen events until it exits; fail on a crash or a stuck child.

        Events other than progress are kept in loadgen.events.jsonl (bounded).
        """
        with open(stderr_path.with_name("loadgen.events.jsonl"), "w", encoding="utf-8") as log:
            self._follow_events(point, server, loadgen, sampler, progress, stderr_path, log)

    def _follow_events(self, point: LoadPoint, server: ServerProcess, loadgen: procs.Child,
                       sampler: procs.Sampler, progress: PointProgress, stderr_path: Path,
                       events_log: Any) -> None:
        scenario = self.scenario
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(loadgen.popen.stdout, lines),
                         daemon=True).start()
        started = time.monotonic()
        # Connecting thousands of clients takes a while; the load itself is bounded.
        ready_deadline = started + STUCK_GRACE_S + point.clients / 50.0
        end_deadline = ready_deadline + scenario.warmup_s + scenario.duration_s + scenario.drain_s
        ready = done = False
        remembered = 0.0
        shown_errors = 0
        done_at = 0.0
        sampler.phase = "connect"
        progress.phase("connect", 0)
        while True:
            try:
                line = lines.get(timeout=0.25)
            except queue.Empty:
                line = ""
            if line is None:  # stdout closed: the load generator is exiting
                break
            event = _parse_event(line)
            kind = event.get("event")
            if kind not in (None, "progress") and events_log.tell() < STDERR_KEEP_BYTES:
                events_log.write(line if line.endswith("\n") else line + "\n")
            if kind == "ready":
                ready = True
            elif kind == "phase":
                phase = str(event.get("phase", "?"))
                sampler.phase = phase
                seconds = float(getattr(scenario, _PHASE_SECONDS.get(phase, ""), 0) or 0)
                progress.phase(phase, seconds)
            elif kind == "progress":
                progress.update(event.get("sent"), event.get("delivered"))
            elif kind == "done":
                done, done_at = True, time.monotonic()
                sampler.phase = "stop"
            elif kind == "error":
                shown_errors += 1
                if shown_errors <= 3:  # the count is in the row; the first few say what
                    self.console.warn(f"{point.label}: load generator: "
                                      f"{event.get('message', event)}")
            progress.tick()
            if time.monotonic() - remembered > 1.0:
                remembered = time.monotonic()
                loadgen.remember_descendants()  # Locust workers, should the master die first
            if server.process is not None and server.process.poll() is not None:
                raise _PointFailed(f"server exited with code {server.process.returncode} "
                                   f"during the point: {_last_lines(chr(10).join(server.output))}")
            now = time.monotonic()
            if not ready and not done and now > ready_deadline:
                raise _PointFailed(f"load generator not ready after {now - started:.0f} s: "
                                   f"{_tail(stderr_path) or '(no output)'}")
            if done and now - done_at > 15.0:
                break  # said 'done' but keeps stdout open: the wait below decides
            if not done and now > end_deadline:
                raise _PointFailed(f"load generator still running {now - started:.0f} s after "
                                   f"start (expected ~{end_deadline - started - STUCK_GRACE_S:.0f} s): "
                                   f"{_tail(stderr_path) or '(no output)'}")
        if not done:
            code = loadgen.wait(5.0)
            raise _PointFailed(f"load generator exited with code {code} before 'done': "
                               f"{_tail(stderr_path) or '(no output)'}")

    @contextlib.contextmanager
    def _network_path(self, point: LoadPoint, server_url: str) -> Iterator[str]:
        """Subscribers' URL: through the emulated network when the scenario has one."""
        network = self.scenario.network
        emulate = network is not None and (
            point.delay_ms or network.jitter_ms or network.bandwidth_kbps or network.loss_pct)
        if not emulate:
            yield server_url
            return
        try:
            from .netem import open_network_path
        except ImportError as exc:
            raise _PointFailed(f"scenario needs network emulation, unavailable: {exc}") from None
        # The proxy goes on the load generator's core: the server's core stays the server's.
        with open_network_path(network, point.delay_ms, server_url, cpu=self.plan.loadgen,
                               seed=self.scenario.seed + point.index) as path:
            for pid in path.pids:
                procs.track(pid, "proxy")
            self._extra_targets = {"proxy": pid for pid in path.pids[:1]}
            info = path.info  # the same dict: close() adds the proxy's counters to it
            self.writer.meta.setdefault("network_paths", []).append(
                {"point": point.index, "repeat": point.repeat, "transport": point.transport,
                 "path": info})
            for text in info.get("warnings", []):
                self.warn(f"{point.label}: network: {text}")
            try:
                yield path.url
            finally:
                self._extra_targets = {}
                for pid in path.pids:
                    procs.untrack(pid)

    def _note_server(self, server: ServerProcess) -> None:
        """The first server's /healthz says what regression is injected: record it."""
        if self._first_server_seen:
            return
        self._first_server_seen = True
        health = _fetch_json(server.url + "/healthz")
        if isinstance(health.get("inject"), dict):
            self.writer.meta["inject"] = health["inject"]

    def _load_frame(self, point: LoadPoint, samples: list) -> pd.DataFrame:
        rows = procs.samples_to_rows(samples, point=point.index, repeat=point.repeat,
                                     transport=point.transport)
        return pd.DataFrame(rows, columns=list(LOAD_COLUMNS))

    def _summarize(self, point: LoadPoint, point_dir: Path, out_dir: Path,
                   samples: list) -> tuple[dict, Any, Any]:
        counters_path = out_dir / "counters.json"
        samples_path = out_dir / "samples.parquet"
        try:
            counters = json.loads(counters_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _PointFailed(f"load generator wrote no readable counters.json: {exc}") from None
        shutil.copyfile(counters_path, point_dir / "counters.json")  # small; keep for debugging
        try:
            raw = pd.read_parquet(samples_path)
        except Exception as exc:
            raise _PointFailed(f"load generator wrote no readable samples.parquet: {exc}") from None
        load_df = self._load_frame(point, samples)
        if counters.get("gc") is not None:
            self.writer.meta["gc"] = {"loadgen": counters["gc"]}
        if counters.get("clock"):
            self.writer.meta["clock"] = counters["clock"]
        from .metrics import summarize_point

        try:
            row, samples_df = summarize_point(
                run_id=self.run_id, scenario=self.scenario, point=point, engine=self.engine,
                counters=counters, samples=raw, load=load_df,
            )
        except Exception as exc:  # a harness bug must not take the finished points with it
            raise _PointFailed(f"could not summarize the point ({type(exc).__name__}: {exc}); "
                               f"counters kept in {display_path(point_dir)}") from exc
        return dict(row), samples_df, load_df

    def _runner_warnings(self, row: dict, load_df: pd.DataFrame | None) -> list[str]:
        """What the runner adds to metrics.summarize_point's warnings (already in the row)."""
        if str(row.get("status", "ok")) == "failed":
            return []
        texts = [t for t in str(row.get("warnings") or "").split("; ") if t]
        extra: list[str] = []
        cpu = _num(row.get("client_cpu_pct"))
        if cpu is not None and cpu > LOADGEN_SATURATED_PCT and not any(
                "load generator" in t for t in texts):
            extra.append(
                f"the load generator used {cpu:.0f}% of a core: the server was not the "
                "bottleneck, so lower the rate or add a Locust worker (--engine locust --workers N)")
        if load_df is not None and len(load_df) and "proxy" in set(load_df["process"]):
            from .metrics import process_stats

            proxy = _num(process_stats(load_df, "proxy")["cpu_pct"])
            if cpu is not None and proxy is not None and cpu + proxy > LOADGEN_SATURATED_PCT:
                # The proxy shares the load generator's core (see duplexbench/netem/path.py).
                extra.append(
                    f"the load generator's core was {cpu + proxy:.0f}% busy (load generator "
                    f"{cpu:.0f}% + network proxy {proxy:.0f}%): latency includes queueing on "
                    "that core, so lower the rate or clients")
        lost = _num(row.get("lost")) or 0
        if lost > 0 and not self.scenario.expect_loss and not any("LOST" in t.upper() for t in texts):
            extra.append(f"LOST {lost:.0f} messages: the scenario expects none")
        return extra


def _env_float(name: str) -> float:
    try:
        return float(os.environ.get(name, "0") or 0)
    except ValueError:
        return 0.0


def _parse_event(line: str) -> dict:
    line = line.strip()
    if not line.startswith("{"):
        return {}
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def _last_lines(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ---------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench run",
        description="Run a scenario: per load point a fresh server and load generator, "
                    "pinned to their own cores; results in results/<run-id>/.",
    )
    parser.add_argument("scenario", help="scenario file, e.g. scenarios/quick.toml")
    parser.add_argument("--out", type=Path, help="results directory (default results/<run-id>)")
    parser.add_argument("--transports", help="comma-separated subset, e.g. sse,websocket")
    parser.add_argument("--duration", type=float, metavar="S", help="measurement seconds per point")
    parser.add_argument("--warmup", type=float, metavar="S", help="warm-up seconds per point")
    parser.add_argument("--repeats", type=int, metavar="N", help="repeat every point N times")
    parser.add_argument("--engine", choices=("native", "locust"), default="native",
                        help="load generator (default native asyncio)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="Locust worker processes (engine locust)")
    parser.add_argument("--no-report", action="store_true", help="skip report.md / report.html")
    parser.add_argument("--baseline", action="store_true",
                        help="mark the run as a baseline (meta.json baseline=true; no latest link)")
    parser.add_argument("--quiet", action="store_true", help="no progress output; table only")
    return parser


def prepare_scenario(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """Apply command-line overrides, validated exactly like the file."""
    changes: dict[str, Any] = {}
    if args.transports:
        changes["transports"] = [t.strip() for t in args.transports.split(",") if t.strip()]
    if args.duration is not None:
        changes["duration_s"] = args.duration
    if args.warmup is not None:
        changes["warmup_s"] = args.warmup
    if args.repeats is not None:
        changes["repeats"] = args.repeats
    return scenario.with_overrides(**changes) if changes else scenario


def _workers(args: argparse.Namespace, scenario: Scenario) -> int:
    if args.workers is not None:
        return max(1, args.workers)
    try:
        return max(1, int(scenario.engine_options.get("workers", 1)))
    except (TypeError, ValueError):
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    console = Console(quiet=args.quiet)
    try:
        scenario = prepare_scenario(load_scenario(args.scenario), args)
    except ScenarioError as exc:
        console.error(str(exc))
        return 2
    run_dir = args.out or Path("results") / new_run_id(scenario.name)
    if (run_dir / "meta.json").exists():
        console.error(f"{run_dir} already holds a run; choose another --out or remove it")
        return 2
    procs.install_signal_handlers()
    session = Session(scenario, run_dir, console=console, engine=args.engine,
                      workers=_workers(args, scenario), baseline=args.baseline,
                      command="run", argv=argv)
    return run_session(session, scenario.points(), report=not args.no_report)


def run_session(session: Session, points: Sequence[LoadPoint], *, report: bool = True) -> int:
    """Run ``points`` in ``session``; final table, warnings, status, exit code."""
    console = session.console
    status, reason, code = "complete", "", EXIT_OK
    try:
        session.start()
        failures_in_a_row = 0
        for number, point in enumerate(points, 1):
            result = session.run_point(point, number, len(points))
            failures_in_a_row = 0 if result.measured else failures_in_a_row + 1
            if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                skipped = len(points) - number
                reason = (f"stopped after {failures_in_a_row} failed points in a row "
                          f"({skipped} not run); last: {result.reason}")
                break
    except KeyboardInterrupt as exc:
        with procs.shielded(redeliver=False):
            what = str(exc) or "interrupted (Ctrl-C)"
            done = len(session.results)
            reason = f"{what} after {done} of {len(points)} points"
            console.error(reason)
            if session.writer is not None:
                session.finish("incomplete", reason)
                console.always(f"results (incomplete): {display_path(session.run_dir)}")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug in the harness: say so, and leave a run marked failed
        with procs.shielded(redeliver=False):
            traceback.print_exc()
            reason = f"internal error: {type(exc).__name__}: {exc}"
            console.error(reason)
            if session.writer is not None and not session.finished:
                session.finish("failed", reason)
        return EXIT_FAILED
    failed = [r for r in session.results if not r.ok]
    if failed or reason:
        status, code = "failed", EXIT_FAILED
        reason = reason or (f"{len(failed)} of {len(points)} points failed "
                            f"({failed[0].status}); first: {failed[0].point.label}: "
                            f"{failed[0].reason}")
    lost = [r for r in session.results if r.ok and r.lost > 0]
    if lost and not session.scenario.expect_loss and code == EXIT_OK:
        code = EXIT_LOST
        reason = (f"{sum(r.lost for r in lost)} message(s) lost in {len(lost)} point(s); "
                  "the scenario expects none")
        session.warn(reason)
    with procs.shielded(redeliver=False):  # a signal now would leave meta.json "running"
        session.finish(status, reason)
    rows = [r.row for r in session.results]
    console.always("")
    console.table(rows, title=f"{session.scenario.name}: {session.run_id}",
                  caption="latency from the intended send time (p50/p99/max; coordinated "
                          "omission corrected) and the actual send time (p99 sent); "
                          "CPU = % of one core while measuring")
    if report and any(r.ok for r in session.results):
        _write_report(session)
    console.summary_warnings()
    if code == EXIT_FAILED:
        console.error(reason)
    elif code == EXIT_LOST:
        console.always(f"LOST MESSAGES: {reason} (exit {EXIT_LOST})", style="bold red")
    console.always(f"results: {display_path(session.run_dir)}{_latest_note(session)}")
    return code


def _write_report(session: Session) -> None:
    try:
        module = importlib.import_module("duplexbench.report")
        result = module.main([str(session.run_dir)])
        if result:
            session.console.warn(f"the report exited with status {result}; "
                                 f"results are intact in {display_path(session.run_dir)}")
    except Exception as exc:  # a report failure must not lose results
        session.console.warn(f"could not write the report ({type(exc).__name__}: {exc}); "
                             f"results are intact in {display_path(session.run_dir)}")
    except KeyboardInterrupt:  # the run itself is finished and saved; only the report stops
        session.console.warn("report interrupted; the results are complete: "
                             f"python -m duplexbench report {display_path(session.run_dir)}")


def _latest_note(session: Session) -> str:
    link = session.run_dir.parent / "latest"
    if session.baseline or not link.is_symlink():
        return ""
    try:
        target = os.readlink(link)
    except OSError:
        return ""
    return f" (latest -> {target})" if target == session.run_dir.name else ""
