"""The load generator as the harness sees it: its command line, its spec, its output.

Both engines offer ``ENGINE SPEC.json OUT_DIR`` (DESIGN.md); the spec is a
``clients.spec.LoadSpec`` built from the scenario and one point, and the
generator reports on stdout with JSON lines (``ready``, ``phase``,
``progress``, ``error``, ``done``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import sys
from pathlib import Path
from typing import Any

from ..scenario import LoadPoint, Scenario

__all__ = ["STDERR_KEEP_BYTES", "loadgen_command", "make_spec", "parse_event", "read_lines",
           "spec_json", "tail", "truncate_head"]

#: Bytes of a child's stderr kept in the run directory (the tail is what explains a crash).
STDERR_KEEP_BYTES = 64 * 1024


def loadgen_command(engine: str, spec_path: Path, out_dir: Path, workers: int) -> list[str]:
    """The engine's CLI (DESIGN.md: both engines offer ``SPEC.json OUT_DIR``)."""
    if engine == "native":
        return [sys.executable, "-m", "clients.loadgen", str(spec_path), str(out_dir)]
    if engine == "browser":  # headless Chromium (duplexbench/browser); options: infra.browser_command
        return [sys.executable, "-m", "duplexbench.engines.browser", str(spec_path), str(out_dir)]
    if engine == "locust":
        return [sys.executable, "-m", "duplexbench.engines.locust", str(spec_path), str(out_dir),
                "--workers", str(workers)]
    raise ValueError(f"unknown engine {engine!r}")


def make_spec(scenario: Scenario, point: LoadPoint, *, sub_url: str, pub_url: str,
              topic_prefix: str, **extra: Any) -> Any:
    """The LoadSpec for one point (clients/spec.py), built from the scenario.

    ``extra`` adds LoadSpec fields the harness decides (e.g. ``loadgen_procs``);
    fields the installed LoadSpec does not know are left out, so the harness
    runs against an older engine too.
    """
    from clients.spec import (
        LoadSpec,  # imported late: the runner must start without clients
    )

    values = {
        "transport": point.transport,
        "sub_url": sub_url,
        "pub_url": pub_url,
        "pattern": getattr(point, "pattern", "") or scenario.pattern,
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
        **extra,
    }
    known = {f.name for f in dataclasses.fields(LoadSpec)}
    return LoadSpec(**{k: v for k, v in values.items() if k in known})


def spec_json(spec: Any) -> str:
    text = spec.to_json()
    return text.decode() if isinstance(text, bytes) else text


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file ('' when unreadable)."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - 8192))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def truncate_head(path: Path, keep: int = STDERR_KEEP_BYTES) -> None:
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


def read_lines(stream: Any, out: "queue.Queue[str | None]") -> None:
    """Copy ``stream``'s lines into ``out`` (a thread's job); None marks EOF."""
    for line in stream:
        out.put(line)
    out.put(None)  # EOF: the load generator closed stdout (it is exiting)


def parse_event(line: str) -> dict:
    line = line.strip()
    if not line.startswith("{"):
        return {}
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}
