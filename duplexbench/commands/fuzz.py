"""`python -m duplexbench fuzz` (``make fuzz``): malformed requests and frames at a server.

Exit status 1 on any 5xx, crash or lost message of the good client; what is sent and how
answers are classified: :mod:`duplexbench.fuzz`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..fuzz import run

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m duplexbench fuzz",
        description="Malformed requests and frames per transport at a server while a good "
        "client is served; exit 1 on a 5xx, a crash or a lost message.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--url", default="", help="fuzz this server instead of starting one")
    p.add_argument("--per-transport", type=int, default=1000, help="inputs per transport")
    p.add_argument("--seconds", type=float, default=50.0, help="time budget for the whole run")
    p.add_argument("--seed", type=int, default=1, help="random seed of the mutations")
    p.add_argument("--concurrency", type=int, default=32, help="connections at once")
    p.add_argument("--read-timeout", type=float, default=0.5, help="wait for an answer, s")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.per_transport < 1 or args.seconds <= 0 or args.concurrency < 1:
        print("fuzz: --per-transport, --seconds and --concurrency must be positive", file=sys.stderr)
        return 2
    server = None
    url = args.url.rstrip("/")
    if not url:
        from ..procs.server import ServerProcess

        # A small --max-payload keeps the size cases quick; the rules are the same.
        server = ServerProcess("all", args=["--max-payload", "65536"]).start()
        url = server.url
    try:
        failed = asyncio.run(run(url, args, server))
    finally:
        if server is not None:
            server.stop()
    return 1 if failed else 0


