"""`python -m duplexbench engines SCENARIO`: native engine vs Locust, client CPU per message.

Why: a load generator that saturates its core measures itself, not the server
(MEASUREMENT.md). Users who outgrow the native asyncio engine move to Locust
workers; this benchmark tells them what that costs: one scenario point run by
both engines, one after the other, against the *same* server process, each
engine's whole process tree (Locust: engine + master + workers) pinned to the
load-generator core, and its CPU seconds per 1,000 delivered messages printed
side by side.

Two CPU figures per engine:
- measure window: CPU of the process tree between the "measure" and "drain"
  events (sampled with psutil), per 1,000 messages delivered in the window: the
  steady-state cost, without interpreter start-up;
- total: ``getrusage(RUSAGE_CHILDREN)`` over the engine's whole life (start-up,
  connecting, merging files included), per 1,000 delivered.

Results go to ``results/engines-<time>/`` (``engines.json``, ``engines.csv`` and
each engine's counters.json / samples.parquet under ``<engine>/``).
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path

import psutil

from .. import procs
from ..runner.generator import loadgen_command

__all__ = ["COLUMNS", "ENGINES", "format_table", "run_engine", "tree_cpu_s"]

ENGINES = ("native", "locust")
COLUMNS = ("engine", "workers", "transport", "clients", "rate_msgs_s", "published", "delivered",
           "lost", "errors", "measure_cpu_s", "measure_delivered", "cpu_s_per_1k_measure",
           "total_cpu_s", "cpu_s_per_1k_total", "lat_p50_ms", "lat_p99_ms", "wall_s")


def tree_cpu_s(root: psutil.Process, seen: dict[int, float]) -> float:
    """CPU seconds (user + system) of ``root`` and its descendants; ``seen`` keeps the
    last value per pid so a process that just exited still counts."""
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        members = []
    for proc in members:
        try:
            times = proc.cpu_times()
            seen[proc.pid] = times.user + times.system
        except psutil.Error:
            pass
    return sum(seen.values())


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_engine(engine: str, spec, out_dir: Path, workers: int, cpu: int | None,
               timeout: float) -> dict:
    """Run one engine on the spec; returns its row (see COLUMNS)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_path = out_dir / "spec.json"
    spec_path.write_text(spec.to_json())
    before_total = _children_cpu_s()
    started = time.monotonic()
    stderr = open(out_dir / "stderr.log", "w")
    child = procs.spawn(loadgen_command(engine, spec_path, out_dir / "out", workers),
                        name=f"loadgen-{engine}", cpu=cpu, stdout=subprocess.PIPE, stderr=stderr)
    root = psutil.Process(child.pid)
    seen: dict[int, float] = {}
    marks: dict[str, float] = {}
    delivered_at: dict[str, int] = {}
    try:
        assert child.popen.stdout is not None
        deadline = started + timeout
        for line in child.popen.stdout:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{engine} engine ran past {timeout:.0f} s")
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "phase" and event.get("phase") in ("measure", "drain"):
                marks[event["phase"]] = tree_cpu_s(root, seen)
                child.remember_descendants()
            elif event.get("event") == "progress":
                tree_cpu_s(root, seen)  # keeps per-pid values fresh
                delivered_at["last"] = int(event.get("delivered", 0))
        code = child.wait(30)
    finally:
        child.stop(timeout=3.0)
        stderr.close()
    if code != 0:
        tail = (out_dir / "stderr.log").read_text()[-1500:]
        raise RuntimeError(f"{engine} engine exited with {code}: {tail}")
    wall = time.monotonic() - started
    total_cpu = _children_cpu_s() - before_total
    counters = json.loads((out_dir / "out" / "counters.json").read_text())
    delivered = int(counters.get("delivered", 0))
    measure_cpu = marks.get("drain", float("nan")) - marks.get("measure", float("nan"))
    p50, p99 = _latency(out_dir / "out" / "samples.parquet")
    return {
        "engine": engine,
        "workers": workers if engine == "locust" else "",
        "transport": spec.transport,
        "clients": spec.clients,
        "rate_msgs_s": spec.rate,
        "published": counters.get("published", 0),
        "delivered": delivered,
        "lost": counters.get("lost", 0),
        "errors": counters.get("errors", 0),
        "measure_cpu_s": round(measure_cpu, 3),
        "measure_delivered": delivered,
        "cpu_s_per_1k_measure": round(1e3 * measure_cpu / delivered, 4) if delivered else None,
        "total_cpu_s": round(total_cpu, 3),
        "cpu_s_per_1k_total": round(1e3 * total_cpu / delivered, 4) if delivered else None,
        "lat_p50_ms": p50,
        "lat_p99_ms": p99,
        "wall_s": round(wall, 1),
    }


def _latency(path: Path) -> tuple[float | None, float | None]:
    """p50 / p99 from the intended send time (nearest rank), as the summary reports them."""
    import numpy as np
    import pandas as pd

    if not path.exists():
        return None, None
    samples = pd.read_parquet(path)
    lat = np.sort((samples["recv_ns"] - samples["intended_ns"]).to_numpy()) / 1e6
    if not len(lat):
        return None, None

    def rank(p: float) -> float:
        return round(float(lat[max(0, int(np.ceil(p / 100 * len(lat))) - 1)]), 3)

    return rank(50), rank(99)


def format_table(rows: list[dict]) -> str:
    head = ("engine", "workers", "delivered", "lost", "CPU s (measure)", "CPU s / 1,000 msgs",
            "CPU s (total)", "CPU s / 1,000 (total)", "p50 ms", "p99 ms")
    keys = ("engine", "workers", "delivered", "lost", "measure_cpu_s", "cpu_s_per_1k_measure",
            "total_cpu_s", "cpu_s_per_1k_total", "lat_p50_ms", "lat_p99_ms")
    cells = [head] + [tuple("-" if r[k] in ("", None) else f"{r[k]:,}" if isinstance(r[k], int)
                            else str(r[k]) for k in keys) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
