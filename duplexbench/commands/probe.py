"""`python -m duplexbench probe URL`: check a server (any implementation) against the wire contract.

Exit status 0 when every rule passes (or is skipped), 1 on a failure, 2 when the server
cannot be reached. The rules: :mod:`duplexbench.probe`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys

from ..probe import RULES, Options, format_report, probe
from ..probe.wire import WireError

__all__ = ["build_parser", "main"]


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
    p.add_argument("--h2", choices=["auto", "on"], default="",
                   help="also check HTTP/2 (ALPN h2 over https, or --h2c-url): 'on' requires it, "
                        "'auto' checks it where the server offers it")
    p.add_argument("--h2c-url", default="", metavar="URL",
                   help="the server's cleartext HTTP/2 port (prior knowledge), e.g. http://HOST:PORT")
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
        only=tuple(args.only), skip=tuple(args.skip), h2=args.h2, h2c_url=args.h2c_url.rstrip("/"),
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
    except WireError as exc:  # e.g. an h2c-only port given as the URL: it answers no HTTP/1.1
        print(f"probe: error: {args.url} does not answer HTTP/1.1 ({exc}); the probe's URL is the "
              "server's HTTP/1.1 (or https) address, a cleartext HTTP/2 port goes to --h2c-url",
              file=sys.stderr)
        return 2
    print(format_report(report), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report.as_json(), fh, indent=2)
    return 0 if report.ok else 1
