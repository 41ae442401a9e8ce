"""`python -m duplexbench engines`: what the load generator costs, side by side.

`engines SCENARIO`: native engine vs Locust, client CPU per delivered message
(:mod:`duplexbench.benchmarks.engine_cost`); `engines --floor`: the native engine against a C
reader that only read()s every delivery, per transport (:mod:`duplexbench.benchmarks.floor`);
`engines --latency`: the native
WebSocket path against a minimal compiled client (:mod:`duplexbench.benchmarks.engine_latency`).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from datetime import datetime, timezone
from pathlib import Path

from .. import procs
from ..benchmarks.engine_cost import COLUMNS, ENGINES, format_table, run_engine
from ..measure.results import atomic_write_json, atomic_write_text
from ..procs.server import ServerError, ServerProcess
from ..runner.generator import make_spec
from ..scenario import ScenarioError, load_scenario

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench engines",
        description="Run one point of a scenario with the native engine and with Locust against "
                    "the same server; print client CPU seconds per 1,000 delivered messages.")
    parser.add_argument("scenario", help="scenario file, e.g. scenarios/fanout.toml")
    parser.add_argument("--transport", help="transport (default: websocket if the scenario has it)")
    parser.add_argument("--point", type=int, default=None, metavar="N",
                        help="index into the scenario's points for that transport "
                             "(default: the one with the most clients)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="Locust workers (default 2)")
    parser.add_argument("--duration", type=float, metavar="S", help="measurement seconds")
    parser.add_argument("--warmup", type=float, metavar="S", help="warm-up seconds")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, default both")
    parser.add_argument("--out", type=Path, help="results directory (default results/engines-<time>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--floor":  # the engine against the C floor reader (its own options)
        from ..benchmarks.floor import main as floor_main

        return floor_main(argv[1:])
    if argv and argv[0] == "--latency":  # the engine against a minimal client (own module)
        from ..benchmarks.engine_latency import main as latency_main

        return latency_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
        changes = {k: v for k, v in (("duration_s", args.duration), ("warmup_s", args.warmup))
                   if v is not None}
        if changes:
            scenario = scenario.with_overrides(**changes)
    except ScenarioError as exc:
        print(f"engines: {exc}", file=sys.stderr)
        return 2
    transport = args.transport or ("websocket" if "websocket" in scenario.transports
                                   else scenario.transports[0])
    points = [p for p in scenario.points() if p.transport == transport and p.repeat == 0]
    if not points:
        print(f"engines: {args.scenario} has no {transport} point", file=sys.stderr)
        return 2
    point = (points[args.point] if args.point is not None
             else max(points, key=lambda p: (p.clients, p.rate)))
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := set(engines) - set(ENGINES):
        print(f"engines: unknown engine(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = args.out or Path("results") / f"engines-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    plan = procs.plan_affinity()
    procs.raise_nofile_limit()
    timeout = scenario.warmup_s + scenario.duration_s + scenario.drain_s + 180
    print(f"engines: {scenario.name}, {transport}, {point.clients} clients, {point.rate:g} msgs/s, "
          f"{point.payload_bytes} B; server CPU {plan.server}, load generator CPU {plan.loadgen}")
    rows: list[dict] = []
    try:
        with ServerProcess(transport="all", args=scenario.server.to_args(), cpu=plan.server) as server:
            for engine in engines:
                spec = make_spec(scenario, point, sub_url=server.url, pub_url=server.url,
                                 topic_prefix=f"eng-{engine}-{stamp[-6:]}")
                print(f"  running {engine} ...", flush=True)
                rows.append(run_engine(engine, spec, out / engine, args.workers, plan.loadgen, timeout))
    except (ServerError, RuntimeError, TimeoutError) as exc:
        print(f"engines: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_table(rows))
    by = {r["engine"]: r for r in rows}
    if {"native", "locust"} <= set(by) and by["native"]["cpu_s_per_1k_measure"]:
        ratio = (by["locust"]["cpu_s_per_1k_measure"] or 0) / by["native"]["cpu_s_per_1k_measure"]
        print(f"\nLocust ({args.workers} workers) used {ratio:.1f}x the native engine's client CPU "
              "per delivered message (measure window).")
    if any(r["lost"] for r in rows):
        print("warning: messages were lost; CPU per message is not comparable", file=sys.stderr)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "engines.csv", buffer.getvalue())
    atomic_write_json(out / "engines.json", {
        "schema_version": 1, "scenario": scenario.name, "scenario_path": str(args.scenario),
        "point": {"transport": transport, "clients": point.clients, "rate": point.rate,
                  "payload_bytes": point.payload_bytes},
        "affinity": plan.to_meta(), "rows": rows,
    })
    print(f"results: {out}")
    return 0

