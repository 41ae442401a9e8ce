"""`python -m duplexbench stacks [SCENARIO]`: the same load on two server stacks, side by side.

The transports are compared through servers, so a server's own per-delivery
cost is part of every verdict. This command runs one scenario against the
aiohttp servers (``python``) and the Node.js reference (``node``, servers/node,
installed by ``make node``) with the same load generator, the same pinning and
a fresh server per point, and puts them side by side: transport x stack,
server CPU per delivered message, memory per connection, p95 latency.

Each stack is an ordinary run (``OUT/python``, ``OUT/node``: meta, summary,
samples) whose server comes from a :class:`StackTarget`; ``OUT/stacks.md`` and
``OUT/stacks.csv`` hold the table, ``OUT/report-side-by-side.*`` the usual
report of both runs (run ids are the stack names).

Memory per connection is the server's peak RSS during the point minus its RSS
once it answered ``/healthz`` (before any client connected), over the clients.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..contract import Transport
from ..machine.parts import NODE_DIR, node_unavailable
from ..measure.results import SAMPLES, SAMPLES_DIR, read_point_files
from ..measure.validity import comparable
from ..procs.node import NodeServerProcess, pin_threads
from ..procs.server import ServerProcess
from ..runner.target import ServerHandle, served, tcp_port_args

__all__ = [
    "DEFAULT_SCENARIO",
    "NODE_DIR",
    "NodeServerProcess",
    "STACKS",
    "StackTarget",
    "node_unavailable",
    "pin_threads",
    "stack_rows",
]

STACKS = ("python", "node")
DEFAULT_SCENARIO = "scenarios/stacks.toml"
#: Issue 15's yardstick: aiohttp CPU per delivery at most this many times Node's.
TARGET_RATIO = {"longpoll": 2.0}
DEFAULT_TARGET_RATIO = 1.5


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (NaN when unreadable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return math.nan


@dataclass
class StackTarget:
    """A fresh server of one stack per point, every thread pinned to ``cpu``.

    Records each point's starting RSS in ``baselines`` ((point, repeat) -> MiB).
    """

    stack: str
    args: Sequence[str] = ()
    cpu: int | None = None
    baselines: dict[tuple[int, int], float] = field(default_factory=dict)

    @contextlib.contextmanager
    def open(self, ctx: Any) -> Iterator[ServerHandle]:
        point = ctx.point
        kind = NodeServerProcess if self.stack == "node" else ServerProcess
        mount = Transport(point.transport).server_mount

        def launch(port: int = 0, tcp_port: int | None = None):
            return kind(mount, port=port, args=list(self.args) + tcp_port_args(tcp_port),
                        cpu=self.cpu)

        def started(server) -> None:
            if self.cpu is not None:
                pin_threads(server.pid, self.cpu)
            self.baselines[(point.index, point.repeat)] = rss_mib(server.pid)

        with served(launch(), ctx.point_dir / "server.log", f"{self.stack} server", started,
                    relaunch=launch) as handle:
            yield handle


def stack_versions(stacks: Sequence[str], uvloop: bool = False) -> list[str]:
    """What each stack is, for the table's note (e.g. ``node v20.20.2 + ws 8.18.3``)."""
    import platform

    import aiohttp

    names = []
    for stack in stacks:
        if stack == "python":
            names.append(f"python {platform.python_version()} + aiohttp {aiohttp.__version__}"
                         + (" + uvloop" if uvloop else ""))
            continue
        try:
            node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
            ws = json.loads((NODE_DIR / "node_modules" / "ws" / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
            node, ws = "?", "?"
        names.append(f"node {node} + ws {ws}")
    return names


# The side-by-side table ----------------------------------------------------------------


def _p95(samples: pd.DataFrame | None, point: int, repeat: int) -> float:
    if samples is None or not len(samples):
        return math.nan
    rows = samples[(samples["point"] == point) & (samples["repeat"] == repeat)]
    values = rows["latency_ms"].dropna().to_numpy(dtype=float)
    if not values.size:
        return math.nan
    rank = max(1, math.ceil(0.95 * values.size))  # nearest rank, as metrics.nearest_rank
    return float(np.partition(values, rank - 1)[rank - 1])


def stack_rows(out: Path, stacks: Sequence[str],
               baselines: dict[str, dict[tuple[int, int], float]]) -> list[dict]:
    """One row per stack and point, from each stack's summary.csv and samples.parquet."""
    rows: list[dict] = []
    for stack in stacks:
        run = out / stack
        if not (run / "summary.csv").exists():
            continue
        summary = pd.read_csv(run / "summary.csv")
        samples = read_point_files(run, SAMPLES, SAMPLES_DIR)
        for rec in summary.to_dict("records"):
            point, repeat = int(rec["point"]), int(rec["repeat"])
            delivered = float(rec.get("delivered") or 0)
            cpu = float(rec.get("server_cpu_s", math.nan))
            rss = float(rec.get("server_rss_mib_max", rec.get("server_rss_mb_max", math.nan)))
            base = baselines.get(stack, {}).get((point, repeat), math.nan)
            clients = int(rec["clients"])
            rows.append({
                "transport": rec["transport"], "clients": clients, "rate_msgs_s": rec["rate_msgs_s"],
                "stack": stack, "status": rec.get("status", ""),
                "validity": "" if pd.isna(rec.get("validity")) else str(rec.get("validity", "")),
                "delivered": int(delivered),
                "lost": int(rec.get("lost") or 0), "server_cpu_s": cpu,
                "server_cpu_us_per_msg": cpu / delivered * 1e6 if delivered else math.nan,
                "server_rss_mib_max": rss,
                "server_kib_per_conn": (rss - base) * 1024 / clients if clients else math.nan,
                "lat_p95_ms": _p95(samples, point, repeat),
                "lat_p99_ms": float(rec.get("lat_p99_ms", math.nan)),
                "server_cpu_pct": float(rec.get("server_cpu_pct", math.nan)),
                "loadgen_cpu_pct": float(rec.get("client_cpu_pct", math.nan)),
            })
    _add_ratios(rows)
    order = {t.value: i for i, t in enumerate(Transport)}
    rows.sort(key=lambda r: (order.get(r["transport"], 9), r["clients"], r["rate_msgs_s"],
                             stacks.index(r["stack"]) if r["stack"] in stacks else 9))
    return rows


def _add_ratios(rows: list[dict]) -> None:
    """python / node CPU per delivery for each transport and load, and issue 15's verdict."""
    node = {(r["transport"], r["clients"], r["rate_msgs_s"]): r for r in rows if r["stack"] == "node"}
    for row in rows:
        row["cpu_ratio_vs_node"] = math.nan
        row["target_ratio"] = TARGET_RATIO.get(row["transport"], DEFAULT_TARGET_RATIO)
        row["within_target"] = ""
        ref = node.get((row["transport"], row["clients"], row["rate_msgs_s"]))
        if row["stack"] == "python" and ref is not None and ref["server_cpu_us_per_msg"] > 0:
            ratio = row["server_cpu_us_per_msg"] / ref["server_cpu_us_per_msg"]
            row["cpu_ratio_vs_node"] = ratio
            if math.isfinite(ratio):
                ok = ratio <= row["target_ratio"] and row["lost"] == 0 and ref["lost"] == 0
                row["within_target"] = "yes" if ok else "no"
                if ok and not (_comparable(row) and _comparable(ref)):
                    row["within_target"] = "yes, but not comparable"  # see the validity column


def _comparable(row: dict) -> bool:
    """Only points where the server, not the load generator, set the figures (validity.py)."""
    return not row.get("validity") or comparable(row["validity"])


def _fmt(value, digits: int = 1) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:,.{digits}f}"
    return str(value)


def render_markdown(rows: list[dict], command: str, note: str) -> str:
    lines = [
        "# Transport x stack", "",
        f"`{command}`", "",
        note, "",
        "| transport | clients | stack | delivered | lost | server CPU s | CPU µs / delivery "
        "| python / node | memory KiB / conn | p95 ms | p99 ms | server / loadgen CPU % | validity |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        ratio = ""
        if r["stack"] == "python" and math.isfinite(r["cpu_ratio_vs_node"]):
            ratio = f"{r['cpu_ratio_vs_node']:.2f}× ({r['within_target'] or '?'}: ≤ {r['target_ratio']:g}×)"
        lines.append(
            f"| {r['transport']} | {r['clients']:,} | {r['stack']} | {r['delivered']:,} | {r['lost']} "
            f"| {_fmt(r['server_cpu_s'], 2)} | {_fmt(r['server_cpu_us_per_msg'])} | {ratio} "
            f"| {_fmt(r['server_kib_per_conn'])} | {_fmt(r['lat_p95_ms'])} | {_fmt(r['lat_p99_ms'])} "
            f"| {_fmt(r['server_cpu_pct'], 0)} / {_fmt(r['loadgen_cpu_pct'], 0)} | {r['validity'] or '-'} |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# The command ------------------------------------------------------------------------------
