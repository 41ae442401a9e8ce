"""`python -m duplexbench COMMAND …`: one entry point, each command in its own module.

The verb names the module: ``duplexbench/commands/<verb>.py`` (as asv's ``commands/``);
the machinery the commands share lives beside them, in the other packages. Each command
module exposes ``main(argv: list[str]) -> int`` and parses its own
arguments, so commands stay independent and import only what they use.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["COMMANDS", "main"]

#: command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("duplexbench.commands.run", "run a scenario: servers, load generators, results"),
    "serve": ("servers.__main__", "start a duplexbench server by hand"),
    "report": ("duplexbench.commands.report", "write report.md / report.html for result directories"),
    "compare": ("duplexbench.commands.compare", "compare two runs; exit 1 on a regression"),
    "ab": ("duplexbench.commands.ab", "A/B gate: BASE's and this tree's servers, interleaved; exit 1 on a regression"),
    "gate-power": ("duplexbench.commands.gate_power", "how often the A/B gate flags known injected changes (A/A, CPU, delay, pad)"),
    "capacity": ("duplexbench.commands.capacity", "highest sustained delivery rate with p99 < 100 ms"),
    "engines": ("duplexbench.commands.engines", "native engine vs Locust, client CPU per message"),
    "stacks": ("duplexbench.commands.stacks", "one scenario on the aiohttp servers and the Node reference"),
    "probe": ("duplexbench.commands.probe", "check a server (any implementation) against the wire contract"),
    "fuzz": ("duplexbench.commands.fuzz", "malformed requests and frames at a server; exit 1 on 5xx/crash/loss"),
    "reproduce": ("duplexbench.commands.reproduce", "run a scenario N times: do its findings hold in the other runs?"),
    "soak": ("duplexbench.commands.soak", "judge a soak run: RSS and open files over time, lost, late"),
    "doctor": ("duplexbench.commands.doctor", "what this machine has of what duplexbench needs, and the fix"),
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
