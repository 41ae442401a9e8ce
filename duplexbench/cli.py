"""`python -m duplexbench COMMAND …`: one entry point, each command in its own module.

Each command module exposes ``main(argv: list[str]) -> int`` and parses its own
arguments, so commands stay independent and import only what they use.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["COMMANDS", "main"]

#: command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("duplexbench.runner", "run a scenario: servers, load generators, results"),
    "serve": ("servers.__main__", "start a duplexbench server by hand"),
    "report": ("duplexbench.report", "write report.md / report.html for result directories"),
    "compare": ("duplexbench.compare", "compare two runs; exit 1 on a regression"),
    "ab": ("duplexbench.abtest", "A/B gate: BASE's and this tree's servers, interleaved; exit 1 on a regression"),
    "capacity": ("duplexbench.capacity", "highest sustained delivery rate with p99 < 100 ms"),
    "engines": ("duplexbench.engines", "native engine vs Locust, client CPU per message"),
    "stacks": ("duplexbench.stacks", "one scenario on the aiohttp servers and the Node reference"),
    "probe": ("duplexbench.probe", "check a server (any implementation) against the wire contract"),
    "fuzz": ("duplexbench.fuzz", "malformed requests and frames at a server; exit 1 on 5xx/crash/loss"),
}


def _usage() -> str:
    lines = ["usage: python -m duplexbench COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "`python -m duplexbench COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"duplexbench: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)
