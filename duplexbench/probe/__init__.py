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

import argparse
import asyncio
import json
import ssl
import sys

# Imported for their rules, in the order the rules are printed.
from . import rules_http, rules_poll, rules_stream, rules_ws  # noqa: F401, I001
from . import rules_origin, rules_tcp  # noqa: F401, I001
from .core import RULES, Options, ProbeReport, Result, run_rules

__all__ = ["Options", "ProbeReport", "RULES", "format_report", "main", "probe"]

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m duplexbench probe",
                                description="Check a server against the duplexbench wire contract.")
    p.add_argument("url", nargs="?", help="http://HOST:PORT or https://HOST:PORT")
    p.add_argument("--ca-file", default="", help="CA certificate (PEM) to verify an https server")
    p.add_argument("--transport", action="append", choices=["longpoll", "stream", "websocket", "tcp"],
                   default=[], help="probe only this transport (repeatable; default: every mounted one)")
    p.add_argument("--heartbeat", type=float, default=None, metavar="S",
                   help="the server's --heartbeat: check stream heartbeats (waits ~3 S)")
    p.add_argument("--retention", type=int, default=None, metavar="N",
                   help="the server's --retention: check 410 and cursor=0 (publishes N+3 messages)")
    p.add_argument("--allowed-origin", default="", metavar="ORIGIN",
                   help="an origin the server allows (its --allow-origin; '*' = any): check CORS")
    p.add_argument("--max-payload", type=int, default=1024 * 1024, metavar="BYTES",
                   help="the server's --max-payload (default 1 MiB)")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN", help="rule ids (fnmatch)")
    p.add_argument("--skip", action="append", default=[], metavar="PATTERN", help="rule ids (fnmatch)")
    p.add_argument("--rule-timeout", type=float, default=5.0, metavar="S")
    p.add_argument("--json", default="", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--list", action="store_true", help="list the rules and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for r in RULES:
            print(f"{r.id:<28} {r.transport or 'any':<10} {r.text}")
        return 0
    if not args.url:
        build_parser().error("the server URL is required")
    options = Options(
        url=args.url.rstrip("/"), ca_file=args.ca_file, transports=tuple(args.transport),
        heartbeat_s=args.heartbeat, retention=args.retention, allowed_origin=args.allowed_origin,
        max_payload=args.max_payload, rule_timeout_s=args.rule_timeout,
        only=tuple(args.only), skip=tuple(args.skip),
    )
    try:
        report = probe(options)
    except ssl.SSLError as exc:
        print(f"probe: error: TLS with {args.url} failed: {exc}; a server certificate signed by "
              "a private CA needs --ca-file CA.pem", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"probe: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncio.TimeoutError) as exc:
        print(f"probe: error: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2
    print(format_report(report), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report.as_json(), fh, indent=2)
    return 0 if report.ok else 1
