"""`python -m duplexbench gate-power`: how often the A/B gate flags known changes, measured.

The machinery is :mod:`duplexbench.compare.power` (rounds) and
:mod:`duplexbench.compare.power_table` (the tables); docs/regression.md holds a measured
table. Each round is written when it finishes; ``--resume`` continues an interrupted or
chunked run (``--stop-after 1`` runs one round per call, e.g. one per ``flock`` hold).
Exit status: 0 done, 2 bad options or an output directory that does not match, 130
interrupted (the completed rounds and their table stay).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from .. import procs
from ..compare.ab import DEFAULT_SCENARIO, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK
from ..compare.power import (
    CASE_HELP,
    DEFAULT_CASES,
    PowerError,
    claim_round,
    completed_rounds,
    parse_case,
    round_file,
    run_round,
)
from ..compare.power_table import markdown
from ..console import Console, display_path
from ..machine.sysinfo import cpu_model
from ..measure.results import atomic_write_json, atomic_write_text, utc_now
from ..scenario import ScenarioError, load_scenario
from .options import prepare_scenario

__all__ = ["main"]

DEFAULT_OUT = Path("results") / "gate-power"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m duplexbench gate-power",
        description="Run the A/B gate --runs times on known changes injected into this tree's "
                    "servers (and on none: A/A) and count how often it flags each.",
        epilog=f"Cases: {CASE_HELP}. The measured table: docs/regression.md")
    p.add_argument("--runs", type=int, default=10, metavar="K",
                   help="rounds in total (each judges every case once; default 10)")
    p.add_argument("--cases", default=",".join(DEFAULT_CASES),
                   help=f"comma-separated (default {','.join(DEFAULT_CASES)})")
    p.add_argument("--scenario", default=DEFAULT_SCENARIO,
                   help=f"the gate's profile (default {DEFAULT_SCENARIO})")
    p.add_argument("--repeats", type=int, metavar="N", help="repeats per side (default: scenario's)")
    p.add_argument("--transports", help="comma-separated subset, e.g. sse,websocket")
    p.add_argument("--duration", type=float, metavar="S", help="measurement seconds per point")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"directory of the rounds and the table (default {DEFAULT_OUT})")
    p.add_argument("--resume", action="store_true",
                   help="continue the rounds already in --out (same settings)")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="run at most N rounds now, then write the table (resume later)")
    p.add_argument("--alpha", type=float, default=0.01, help="the gate's significance level")
    p.add_argument("--seed", type=int, default=1, help="seeds the order of the sides per point")
    p.add_argument("--quiet", action="store_true", help="no per-point progress output")
    return p


def _settings(args: argparse.Namespace, scenario, cases) -> dict:
    return {"cases": [c.name for c in cases], "scenario": scenario.to_dict(),
            "alpha": args.alpha, "seed": args.seed}


def _check_out(out: Path, settings: dict, resume: bool) -> None:
    """A fresh directory, or (with --resume) one holding rounds of the same settings."""
    saved = out / "settings.json"
    if not saved.exists():
        if any(out.glob("round-*")):
            raise PowerError(f"{out} holds rounds but no settings.json; choose another --out")
        return
    if not resume:
        raise PowerError(f"{out} already holds gate-power rounds: --resume continues them, "
                         "or choose another --out")
    before = json.loads(saved.read_text(encoding="utf-8"))
    if before.get("settings") != settings:
        raise PowerError(f"{out} was started with other settings ({saved}); resume with the "
                         "same --cases/--scenario/--repeats/--transports/--duration/--alpha/"
                         "--seed, or choose another --out")


def _summary_line(record: dict) -> str:
    parts = []
    for name, verdict in record["cases"].items():
        named = sorted({f"{r['transport']} {r['metric']}" for r in verdict.get("regressions", [])})
        word = {0: "ok", 1: "FLAGGED", 2: "not judged"}.get(verdict.get("exit"), "?")
        parts.append(f"{name} {word}" + (f" ({'; '.join(named[:4])}"
                                         f"{'; ...' if len(named) > 4 else ''})" if named else ""))
    return f"round {record['round']}: " + ", ".join(parts)


def _write_table(out: Path, console: Console) -> str:
    records = completed_rounds(out)
    meta = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    header = (f"gate-power: {len(records)} round(s) of `{meta['command']}` on {meta['machine']}, "
              f"{meta['started_at'][:10]}")
    text = markdown(records, header + "\n") if records else header + "\n\nno complete round yet\n"
    atomic_write_text(out / "gate-power.md", text)
    console.always(f"gate-power table: {display_path(out / 'gate-power.md')}")
    return text


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    console = Console(quiet=args.quiet)
    try:
        if args.runs < 1 or (args.stop_after is not None and args.stop_after < 1):
            raise PowerError("--runs and --stop-after must be >= 1")
        cases = [parse_case(text) for text in args.cases.split(",") if text.strip()]
        if not cases or len({c.name for c in cases}) != len(cases):
            raise PowerError(f"--cases {args.cases!r}: expected distinct cases ({CASE_HELP})")
        scenario = prepare_scenario(load_scenario(args.scenario), args)
        settings = _settings(args, scenario, cases)
        _check_out(args.out, settings, args.resume)
    except (PowerError, ScenarioError, OSError, ValueError) as exc:
        console.error(f"duplexbench gate-power: {exc}")
        return EXIT_INPUT
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.out / "settings.json").exists():
        atomic_write_json(args.out / "settings.json", {
            "settings": settings, "started_at": utc_now(),
            "command": "python -m duplexbench gate-power " + " ".join(argv),
            "machine": f"{platform.node()}: {cpu_model() or platform.processor()}, "
                       f"{os.cpu_count()} CPUs"})
    procs.install_signal_handlers()
    ran = 0
    try:
        for number in range(1, args.runs + 1):
            if args.stop_after is not None and ran >= args.stop_after:
                break
            if round_file(args.out, number).exists():
                continue
            claim = claim_round(args.out, number)
            if claim is None:  # another gate-power process on this --out is running it
                continue
            try:
                console.always(f"gate-power: round {number}/{args.runs} ({len(cases)} case(s) "
                               f"+ base, {len(scenario.points())} points each)")
                record = run_round(number, scenario, cases, args.out, console, argv,
                                   seed=args.seed, alpha=args.alpha)
            finally:
                claim.unlink(missing_ok=True)
            ran += 1
            console.always(_summary_line(record))
    except KeyboardInterrupt as exc:
        console.error(f"duplexbench gate-power: {exc or 'interrupted (Ctrl-C)'}; completed rounds "
                      f"are kept (--resume continues)")
        _write_table(args.out, console)
        return EXIT_INTERRUPTED
    print(_write_table(args.out, console))
    return EXIT_OK
