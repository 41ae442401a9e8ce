"""One load point's processes: the server (target), the load generator, the sampler.

:class:`PointRunner` measures one point: opens its extensions and the server in
order (:mod:`~duplexbench.runner.extension`: a path in front of the server, faults,
TLS...), starts the load generator pinned to its core, samples every process tree
from *this* process at 20 Hz, follows the generator's events (progress, crash,
stuck), and stops everything in reverse order whatever happens. It returns the
generator's raw output; turning that into a summary row is :mod:`~duplexbench.runner.row`'s job.

Anything that prevents a measurement raises :class:`~duplexbench.runner.outcome.PointFailed`
with the reason (the last lines of the child that failed).
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import procs
from ..console import PointProgress
from ..scenario import LoadPoint, Scenario
from . import generator
from .extension import PointContext, PointExtension, Stage
from .outcome import PointFailed
from .target import ServerHandle, SpawnedTarget, Target

__all__ = ["PointOutput", "PointRunner", "SAMPLE_HZ", "STUCK_GRACE_S"]

#: Process sampling rate; DESIGN.md asks >= 10 Hz, 20 Hz leaves margin for a late tick.
SAMPLE_HZ = 20.0
#: Seconds of slack after the expected end of a point before the loadgen is declared stuck.
STUCK_GRACE_S = 30.0

_PHASE_SECONDS = {"warmup": "warmup_s", "measure": "duration_s", "drain": "drain_s"}


@dataclass
class PointOutput:
    """The load generator's files, read: counters.json and its samples."""

    counters: dict
    samples: pd.DataFrame


@dataclass
class PointRunner:
    """Measures points of one scenario; one instance per run."""

    scenario: Scenario
    plan: procs.AffinityPlan
    engine: str = "native"
    workers: int = 1
    #: How the server is obtained; default a fresh spawned server per point.
    target: Target | None = None
    #: What the points have besides server and load generator, in order (duplexbench/extensions.py).
    extensions: Sequence[PointExtension] = ()
    #: Called with (text, console_only=bool) for warnings the user must see.
    warn: Callable[..., None] = lambda text, console_only=False: None
    #: Called with the first server's handle (the session records its /healthz).
    on_server: Callable[[ServerHandle], None] = lambda handle: None
    #: Extra LoadSpec fields decided by the harness (loadgen_procs, source_addrs, ...).
    spec_extra: Callable[[LoadPoint], dict] = lambda point: {}
    #: The command line of the load generator (tests substitute a fake engine).
    command: Callable[..., list[str]] = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.target is None:
            self.target = SpawnedTarget(args=self.scenario.server.to_args(), cpu=self.plan.server)

    def spec_fields(self, point: LoadPoint) -> dict:
        """The harness's LoadSpec fields, then every extension's."""
        fields = dict(self.spec_extra(point))
        for extension in self.extensions:
            fields.update(extension.spec_fields(point))
        return fields

    def _loadgen_command(self, ctx: PointContext, spec_path: Path, out_dir: Path) -> list[str]:
        if self.command is None:  # a test's fake engine stands in for every engine
            for extension in self.extensions:
                command = extension.loadgen_command(ctx, spec_path, out_dir)
                if command is not None:
                    return command
        command = self.command or generator.loadgen_command
        return command(ctx.point.engine or self.engine, spec_path, out_dir, self.workers)

    def measure(self, ctx: PointContext, work_dir: Path, progress: PointProgress,
                samples: list) -> PointOutput:
        """Run the point; ``samples`` receives the process samples even when it fails."""
        scenario, point, point_dir = self.scenario, ctx.point, ctx.point_dir
        loadgen: procs.Child | None = None
        sampler: procs.Sampler | None = None
        stderr_path = point_dir / "loadgen.stderr"
        out_dir = work_dir / "out"
        ctx.server_args = [arg for extension in self.extensions
                           for arg in extension.server_args(point)]
        try:
            with contextlib.ExitStack() as stack:
                for extension in self.extensions:
                    if extension.stage == Stage.BEFORE_SERVER:
                        stack.enter_context(extension.open(ctx))
                server = stack.enter_context(self.target.open(ctx))
                ctx.server, ctx.sub_url, ctx.pub_url = server, server.url, server.url
                ctx.check_alive = server.check_alive
                self.on_server(server)
                for extension in self.extensions:
                    if extension.stage == Stage.AFTER_SERVER:
                        stack.enter_context(extension.open(ctx))
                # sub_tcp: the tcp subscribers' path (netem); unset, /healthz finds the listener.
                extra_spec = {"sub_tcp": ctx.sub_tcp} if ctx.sub_tcp else {}
                spec = generator.make_spec(
                    scenario, point, sub_url=ctx.sub_url, pub_url=ctx.pub_url, **extra_spec,
                    topic_prefix=f"{scenario.name[:24]}-p{point.index}", **self.spec_fields(point))
                spec_path = point_dir / "spec.json"
                spec_path.write_text(generator.spec_json(spec), encoding="utf-8")
                out_dir.mkdir()
                try:
                    with open(stderr_path, "w", encoding="utf-8") as stderr:
                        loadgen = procs.spawn(
                            self._loadgen_command(ctx, spec_path, out_dir),
                            name="loadgen", cpu=self.plan.loadgen,
                            stdout=subprocess.PIPE, stderr=stderr,
                        )
                    targets = {"loadgen": loadgen.pid, **ctx.pids}
                    if server.pid is not None:
                        targets = {"server": server.pid, **targets}
                    sampler = procs.Sampler(targets, hz=SAMPLE_HZ).start()
                    for extension in self.extensions:
                        extension.on_sampling(ctx, sampler)
                    self._follow(ctx, loadgen, sampler, progress, stderr_path)
                    samples[:] = sampler.stop()
                    code = loadgen.wait(15.0)
                    if code != 0:
                        raise PointFailed(f"load generator exited with code {code}: "
                                          f"{generator.tail(stderr_path) or '(no output)'}")
                finally:
                    with procs.shielded():
                        if sampler is not None:
                            samples[:] = sampler.stop()
                        if loadgen is not None:
                            loadgen.stop(timeout=3.0)
                        generator.truncate_head(stderr_path)
        except subprocess.TimeoutExpired:
            raise PointFailed("load generator did not exit after 'done'") from None
        return self._read_output(point_dir, out_dir)

    @staticmethod
    def _read_output(point_dir: Path, out_dir: Path) -> PointOutput:
        counters_path = out_dir / "counters.json"
        try:
            counters = json.loads(counters_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PointFailed(f"load generator wrote no readable counters.json: {exc}") from None
        shutil.copyfile(counters_path, point_dir / "counters.json")  # small; keep for debugging
        try:
            raw = pd.read_parquet(out_dir / "samples.parquet")
        except Exception as exc:
            raise PointFailed(f"load generator wrote no readable samples.parquet: {exc}") from None
        return PointOutput(counters, raw)

    def _follow(self, ctx: PointContext, loadgen: procs.Child, sampler: procs.Sampler,
                progress: PointProgress, stderr_path: Path) -> None:
        """Read loadgen events until it exits; fail on a crash or a stuck child.

        Events other than progress are kept in loadgen.events.jsonl (bounded).
        """
        with open(stderr_path.with_name("loadgen.events.jsonl"), "w", encoding="utf-8") as log:
            self._follow_events(ctx, loadgen, sampler, progress, stderr_path, log)

    def _follow_events(self, ctx: PointContext, loadgen: procs.Child, sampler: procs.Sampler,
                       progress: PointProgress, stderr_path: Path, events_log: Any) -> None:
        scenario, point = self.scenario, ctx.point
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=generator.read_lines, args=(loadgen.popen.stdout, lines),
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
            event = generator.parse_event(line)
            kind = event.get("event")
            if kind not in (None, "progress") and events_log.tell() < generator.STDERR_KEEP_BYTES:
                events_log.write(line if line.endswith("\n") else line + "\n")
            if kind == "ready":
                ready = True
            elif kind == "phase":
                phase = str(event.get("phase", "?"))
                sampler.phase = phase
                for extension in self.extensions:
                    extension.on_phase(ctx, phase)
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
                    self.warn(f"{point.label}: load generator: {event.get('message', event)}",
                              console_only=True)
            progress.tick()
            if time.monotonic() - remembered > 1.0:
                remembered = time.monotonic()
                loadgen.remember_descendants()  # Locust workers, should the master die first
            ctx.check_alive()  # the server's, or an extension's (a planned restart is not a crash)
            now = time.monotonic()
            if not ready and not done and now > ready_deadline:
                raise PointFailed(f"load generator not ready after {now - started:.0f} s: "
                                  f"{generator.tail(stderr_path) or '(no output)'}")
            if done and now - done_at > 15.0:
                break  # said 'done' but keeps stdout open: the wait below decides
            if not done and now > end_deadline:
                raise PointFailed(f"load generator still running {now - started:.0f} s after "
                                  f"start (expected ~{end_deadline - started - STUCK_GRACE_S:.0f} s): "
                                  f"{generator.tail(stderr_path) or '(no output)'}")
        if not done:
            code = loadgen.wait(5.0)
            raise PointFailed(f"load generator exited with code {code} before 'done': "
                              f"{generator.tail(stderr_path) or '(no output)'}")
