"""`python -m duplexbench doctor`: every capability of this machine, what was found, the fix.

One line per capability (:data:`duplexbench.machine.doctor.CAPABILITIES`); with
``--scenario FILE`` also what that scenario's points need (the same check `run` makes
before its first point). ``--install`` is the set-up (``make setup``, ``make test``,
``make bench``): it installs the missing Debian programs (all, or those the scenarios /
``--need`` ask for) as root, and otherwise prints the one line naming the command.

Exit status: 0 when nothing asked for is missing (a ``fallback`` such as netem's proxy
is not missing), 1 when something is, 2 on bad arguments. ``--install`` exits 0 even
when it could not install: what needs the part then skips or refuses, saying why.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..machine import doctor
from ..machine.setup import install_missing
from ..scenario import ScenarioError, load_scenario

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    keys = ", ".join(c.key for c in doctor.CAPABILITIES)
    p = argparse.ArgumentParser(
        prog="python -m duplexbench doctor",
        description="Check what this machine has of what duplexbench starts or relies on "
                    "(one line per capability, with the fix), or install the missing parts.")
    p.add_argument("--scenario", action="append", default=[], metavar="FILE",
                   help="also check what this scenario's points need (repeatable)")
    p.add_argument("--engine", choices=("native", "locust", "browser"), default="native",
                   help="the engine `run --engine` would use (default native)")
    p.add_argument("--need", action="append", default=[], metavar="KEY[,KEY]",
                   help=f"capabilities asked for by name ({keys})")
    p.add_argument("--install", action="store_true",
                   help="install the missing Debian programs (all, or those --scenario/--need "
                        "ask for) with apt as root; otherwise print the command to run")
    p.add_argument("--quiet", action="store_true", help="print only what is not ok")
    return p


def _asked(args: argparse.Namespace) -> dict[str, str] | None:
    """Capability key -> why, for --scenario and --need; None when neither was given."""
    if not args.scenario and not args.need:
        return None
    asked: dict[str, str] = {}
    for name in (n.strip() for value in args.need for n in value.split(",")):
        if name and name not in {c.key for c in doctor.CAPABILITIES}:
            raise ValueError(f"--need {name!r}: expected one of "
                             f"{', '.join(c.key for c in doctor.CAPABILITIES)}")
        if name:
            asked[name] = "--need"
    for path in args.scenario:
        scenario = load_scenario(path)
        for key, why in doctor.needed(scenario.points(), engine=args.engine,
                                      scenario=scenario).items():
            asked.setdefault(key, f"{path}: {why}")
    return asked


def _install(asked: dict[str, str] | None, quiet: bool) -> int:
    if asked is None:
        programs = None  # the set-up of the whole suite: every program
    else:
        programs = [p for c in doctor.CAPABILITIES if c.key in asked for p in c.programs]
    if programs == []:
        return 0
    result = install_missing(programs)
    if result.message:
        print(result.message, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv or []))
    try:
        asked = _asked(args)
    except (ScenarioError, ValueError, OSError) as exc:
        print(f"duplexbench doctor: {exc}")
        return 2
    if args.install:
        return _install(asked, args.quiet)
    results = doctor.check()
    lines = doctor.report_lines(results)
    shown = [line for line, (_, f) in zip(lines, results) if not args.quiet or f.state != doctor.OK]
    print("\n".join(shown))
    missing = {c.key for c, f in results if f.state == doctor.MISSING}
    if asked is not None:
        for key, why in asked.items():
            title = next(c.title for c in doctor.CAPABILITIES if c.key == key)
            print(f"{'needs':<8} {title}: {why}: {'MISSING' if key in missing else 'ok'}")
        missing &= set(asked)
    return 1 if missing else 0
