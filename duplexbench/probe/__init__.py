"""``python -m duplexbench probe URL``: check that a server speaks the duplexbench contract.

Every rule of servers/README.md (and the round-2 contract: epochs, one cursor
format, Origin policy) is a small check function in a table (``RULES``, see
:mod:`.core`), grouped by endpoint in ``rules_*.py``. Each runs against the
live server over real sockets, on its own topic, under its own time limit; the
probe prints one line per rule (pass, fail with expected and got, skip when
its transport is not mounted or it needs an option), a summary, and exits 1
when any mounted transport breaks a rule (2 when the server cannot be reached).
"""

from __future__ import annotations

import asyncio

# Imported for their rules, in the order the rules are printed.
from . import rules_http, rules_poll, rules_stream, rules_ws  # noqa: F401, I001
from . import rules_origin, rules_tcp  # noqa: F401, I001
from . import rules_h2  # noqa: F401, I001  (only with --h2 / --h2c-url)
from .core import RULES, Options, ProbeReport, Result, run_rules

__all__ = ["Options", "ProbeReport", "RULES", "format_report", "probe"]

_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "skip"}


def probe(options: Options) -> ProbeReport:
    """Run the probe (from synchronous code); raises OSError when the server is unreachable."""
    return asyncio.run(run_rules(options))


def format_result(r: Result) -> str:
    line = f"{_MARK[r.status]}  {r.rule.id:<28} {r.rule.text}"
    if r.status == "skip":
        return f"{line}  [{r.detail}]"
    if r.status == "fail":
        return f"{line}\n      {r.detail}\n      expected: {r.expected}\n      got:      {r.got}"
    return line


def format_report(report: ProbeReport) -> str:
    lines = [f"probe {report.url}: epoch {report.epoch or '(none)'}, mounted "
             f"{', '.join(report.mounted) or '(none)'}"]
    lines += [format_result(r) for r in report.results]
    c = report.counts()
    verdict = "conforms" if report.ok else "BREAKS THE CONTRACT: " + ", ".join(r.rule.id for r in report.failed)
    lines.append(f"{len(report.results)} rules: {c['pass']} pass, {c['fail']} fail, {c['skip']} skip "
                 f"in {report.elapsed_s:.1f} s; {verdict}")
    return "\n".join(lines)
