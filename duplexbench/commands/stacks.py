"""`python -m duplexbench stacks [SCENARIO]`: one scenario on the aiohttp servers and the Node reference.

Each stack's points run through the ordinary runner with a
:class:`~duplexbench.benchmarks.stacks.StackTarget`; the side-by-side table and its
ratios are :mod:`duplexbench.benchmarks.stacks`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from .. import procs
from ..benchmarks.stacks import (
    DEFAULT_SCENARIO,
    STACKS,
    StackTarget,
    render_markdown,
    stack_rows,
    stack_versions,
    write_csv,
)
from ..console import Console
from ..extensions import point_extensions
from ..machine.doctor import MissingParts, require
from ..runner.loop import run_session
from ..runner.session import Session
from ..scenario import ScenarioError, load_scenario
from .options import prepare_scenario

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench stacks",
        description="Run one scenario against the aiohttp servers and the Node.js reference "
                    "(servers/node) and put them side by side.")
    parser.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO,
                        help=f"scenario file (default {DEFAULT_SCENARIO})")
    parser.add_argument("--stacks", default=",".join(STACKS),
                        help="comma-separated, in run order (default python,node)")
    parser.add_argument("--out", type=Path, help="results directory (default results/stacks-<time>)")
    parser.add_argument("--transports", help="comma-separated subset, e.g. sse,websocket")
    parser.add_argument("--duration", type=float, metavar="S", help="measurement seconds per point")
    parser.add_argument("--warmup", type=float, metavar="S", help="warm-up seconds per point")
    parser.add_argument("--repeats", type=int, metavar="N", help="repeat every point N times")
    parser.add_argument("--clients", metavar="N[,N]", help="subscriber counts, e.g. 2000,10000")
    parser.add_argument("--loadgen-procs", type=int, default=None, metavar="N",
                        help="subscriber processes of the load generator (as for `run`)")
    parser.add_argument("--no-report", action="store_true", help="skip the side-by-side report")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    console = Console(quiet=args.quiet)
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    unknown = [s for s in stacks if s not in STACKS]
    if unknown or not stacks or len(set(stacks)) != len(stacks):
        console.error(f"--stacks {args.stacks!r}: expected distinct names among {', '.join(STACKS)}")
        return 2
    try:
        scenario = prepare_scenario(load_scenario(args.scenario), args)
        if args.clients:
            try:
                counts = [int(n) for n in args.clients.split(",") if n.strip()]
            except ValueError:
                raise ScenarioError(f"--clients {args.clients!r}: expected N or N,N,... "
                                    "(subscriber counts)") from None
            scenario = scenario.with_overrides(clients=counts)
    except ScenarioError as exc:
        console.error(str(exc))
        return 2
    try:  # the Node reference (and nginx, Chromium, ... where the points ask) before anything
        require(scenario.points(), scenario=scenario, extra=("node",) if "node" in stacks else ())
    except MissingParts as exc:
        console.error(str(exc))
        return 2
    out = args.out or Path("results") / time.strftime("stacks-%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        console.error(f"{out} is not empty; choose another --out or remove it")
        return 2
    out.mkdir(parents=True, exist_ok=True)
    procs.install_signal_handlers()
    cpu = procs.plan_affinity().server
    baselines: dict[str, dict[tuple[int, int], float]] = {}
    codes = []
    for stack in stacks:
        target = StackTarget(stack, args=scenario.server.to_args(), cpu=cpu)
        baselines[stack] = target.baselines
        session = Session(scenario, out / stack, console=console, command="stacks",
                          argv=[*argv, f"--stack={stack}"], target=target,
                          loadgen_procs=args.loadgen_procs or scenario.engine_options.get("loadgen_procs"),
                          extensions=point_extensions(scenario))
        codes.append(run_session(session, scenario.points()))
        if codes[-1] == 130:  # interrupted: the other stack would be no comparison
            break
    rows = stack_rows(out, stacks, baselines)
    command = "python -m duplexbench stacks " + " ".join(argv or [args.scenario])
    note = (f"Scenario {scenario.name}; stacks: {', '.join(stack_versions(stacks, scenario.server.uvloop))}. "
            f"Server pinned to CPU {cpu}, a fresh server per point; "
            "CPU = server process CPU over the measurement window / deliveries; memory = "
            "(peak RSS - RSS at start) / clients; CPU % = of one core while measuring (a load "
            "generator near 100 % makes latency its own, not the server's). A shared or busy "
            "machine makes all of these noisy.")
    markdown = render_markdown(rows, command, note)
    (out / "stacks.md").write_text(markdown, encoding="utf-8")
    write_csv(out / "stacks.csv", rows)
    console.always("")
    console.always(markdown)
    if not args.no_report and len(stacks) > 1:
        try:
            from ..report import build_report

            build_report([out / s for s in stacks if (out / s / "summary.csv").exists()], out_dir=out)
        except Exception as exc:  # the table above is the result; the report is a bonus
            console.warn(f"side-by-side report failed: {exc}")
    console.always(f"stacks: {out}/stacks.md")
    return max(codes) if codes else 1
