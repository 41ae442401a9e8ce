"""A delaying TCP proxy on loopback: the portable network between clients and server.

Why a proxy: these machines have no netem qdisc (see docs/network.md),
and a user-space proxy needs no privileges. It runs in its own process (so its
CPU is neither the server's nor the load generator's to account for, and a
busy proxy cannot stall either event loop), accepts on 127.0.0.1, opens one
upstream connection per accepted one, and releases every chunk it reads after
the time :mod:`duplexbench.netem.link` computes (delay, jitter, bandwidth, loss
stall), in order. ``TCP_NODELAY`` is set on both of its sockets, so Nagle's
algorithm never adds its own delay to what is configured.

    python -m duplexbench.netem.proxy --listen 127.0.0.1:0 --target 127.0.0.1:8080 --delay-ms 25

The first stdout line is ``duplexbench netem proxy listening on HOST:PORT -> HOST:PORT``;
on SIGTERM/SIGINT it prints one JSON line of counters (``{"event": "stats", ...}``) and exits.
SIGUSR1 cuts every open connection at once (both sockets reset, nothing held is
forwarded) and prints ``{"event": "cut", "connections": N}``: the "cut" fault of
duplexbench/faults, a network failover as the clients see it. New connections
are accepted as before.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import signal
import sys
import time

from ..tcp import set_nodelay
from .link import Direction, LinkConfig, TokenBucket

__all__ = ["ProxyServer", "main", "parse_hostport"]

#: Per direction of one connection: stop reading the source beyond this much
#: held data (a generous stand-in for a TCP receive window) and resume below LOW.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024

#: asyncio rounds a timer's wait *up* to the selector's millisecond, so timers fire
#: up to ~1 ms late; aiming half a millisecond early and releasing whatever is due
#: within that margin centres the error on zero (calibration measures what is left).
EARLY_S = 0.0005

_EOF = object()  # queue marker: forward a FIN
_CLOSE = object()  # queue marker: the source is gone; close the destination


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Stats:
    __slots__ = ("connections", "active", "bytes_up", "bytes_down", "chunks", "stalls",
                 "nodelay_failures", "connect_errors", "max_lateness_ms", "cuts", "cut_connections")

    def __init__(self) -> None:
        self.connections = self.active = self.bytes_up = self.bytes_down = 0
        self.cuts = self.cut_connections = 0
        self.chunks = self.stalls = self.nodelay_failures = self.connect_errors = 0
        #: How late the event loop released a chunk versus its scheduled time: the
        #: proxy's own timing error, the first thing to check when in doubt.
        self.max_lateness_ms = 0.0

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


class _Pipe:
    """One direction: chunks read from ``src`` are written to ``dst`` at their release time."""

    def __init__(self, server: "ProxyServer", model: Direction, up: bool) -> None:
        self.server = server
        self.loop = server.loop
        self.model = model
        self.up = up
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.queue: collections.deque = collections.deque()
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.src_paused = False
        self.dst_paused = False
        self.done = False  # EOF or close forwarded
        #: The other direction of the same connection: when both have carried a
        #: FIN, nothing more can flow and both sockets are closed.
        self.partner: "_Pipe | None" = None

    def feed(self, data: bytes) -> None:
        now = self.loop.time()
        stalls = self.model.stalls
        self.queue.append((self.model.release_time(now, len(data)), data))
        self.queued += len(data)
        stats = self.server.stats
        stats.chunks += 1
        stats.stalls += self.model.stalls - stalls
        if self.up:
            stats.bytes_up += len(data)
        else:
            stats.bytes_down += len(data)
        self._flow()
        self._schedule()

    def feed_marker(self, marker: object) -> None:
        self.queue.append((self.model.eof_time(self.loop.time()), marker))
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is None and self.queue and not self.dst_paused:
            self.timer = self.loop.call_at(self.queue[0][0] - EARLY_S, self._flush)

    def _flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        stats = self.server.stats
        while self.queue and self.queue[0][0] <= now + EARLY_S and not self.dst_paused:
            when, item = self.queue.popleft()
            stats.max_lateness_ms = max(stats.max_lateness_ms, (now - when) * 1000.0)
            dst = self.dst
            if item is _EOF:
                self.done = True
                if dst is not None and not dst.is_closing() and dst.can_write_eof():
                    dst.write_eof()
                partner = self.partner
                if partner is not None and partner.done:
                    for transport in (dst, partner.dst):
                        if transport is not None:
                            transport.close()
            elif item is _CLOSE:
                self.done = True
                if dst is not None:
                    dst.close()
            else:
                self.queued -= len(item)
                if dst is not None and not dst.is_closing():
                    dst.write(item)
        self._flow()
        self._schedule()

    def _flow(self) -> None:
        """Back-pressure: stop reading the source while too much is held or the sink is full."""
        src = self.src
        if src is None or src.is_closing():
            return
        if not self.src_paused and (self.queued > HIGH_WATER or self.dst_paused):
            self.src_paused = True
            src.pause_reading()
        elif self.src_paused and self.queued < LOW_WATER and not self.dst_paused:
            self.src_paused = False
            src.resume_reading()

    def set_dst_paused(self, paused: bool) -> None:
        self.dst_paused = paused
        self._flow()
        self._schedule()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: feeds ``out_pipe``, is written by ``in_pipe``."""

    def __init__(self, server: "ProxyServer", out_pipe: _Pipe, in_pipe: _Pipe) -> None:
        self.server, self.out_pipe, self.in_pipe = server, out_pipe, in_pipe
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not set_nodelay(transport):
            self.server.stats.nodelay_failures += 1
        self.out_pipe.src = transport
        self.in_pipe.dst = transport

    def data_received(self, data: bytes) -> None:
        self.out_pipe.feed(data)

    def eof_received(self) -> bool:
        self.out_pipe.feed_marker(_EOF)
        return True  # half-close: keep writing the other direction

    def connection_lost(self, exc: Exception | None) -> None:
        self.out_pipe.src = None
        self.in_pipe.dst = None
        self.in_pipe.cancel()  # nobody left to write to
        if not self.out_pipe.done:
            self.out_pipe.feed_marker(_CLOSE)

    def pause_writing(self) -> None:
        self.in_pipe.set_dst_paused(True)

    def resume_writing(self) -> None:
        self.in_pipe.set_dst_paused(False)


class _Client(_Side):
    """The accepted side: opens the upstream connection, reading paused until it exists."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.stats.connections += 1
        self.server.stats.active += 1
        self.server.clients.add(self)
        self.upstream: asyncio.Transport | None = None
        assert self.transport is not None
        self.transport.pause_reading()
        self.server.loop.create_task(self._connect())

    async def _connect(self) -> None:
        server = self.server
        host, port = server.target
        try:
            upstream, _ = await server.loop.create_connection(
                lambda: _Side(server, self.in_pipe, self.out_pipe), host, port
            )
        except OSError:
            server.stats.connect_errors += 1
            if self.transport is not None:
                self.transport.abort()
            return
        if self.transport is None or self.transport.is_closing():
            upstream.close()  # the client left while we connected: leave nothing open
            return
        self.upstream = upstream
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.stats.active -= 1
        self.server.clients.discard(self)
        super().connection_lost(exc)

    def cut(self) -> None:
        """Reset both sockets now: what a failed link or a failover looks like to both ends."""
        self.in_pipe.cancel()
        self.out_pipe.cancel()
        for transport in (self.transport, self.upstream):
            if transport is not None:
                transport.abort()


class ProxyServer:
    """Accepts on ``listen``, connects each accepted socket to ``target`` through the link."""

    def __init__(self, config: LinkConfig, target: tuple[str, int], seed: int | None = None) -> None:
        self.config = config.validate()
        self.target = target
        self.rng = random.Random(seed)
        self.stats = _Stats()
        # One bucket per direction, shared by all connections: one bottleneck link.
        self.bucket_up: TokenBucket | None = config.bucket()
        self.bucket_down: TokenBucket | None = config.bucket()
        self.loop = asyncio.get_running_loop()
        self.server: asyncio.AbstractServer | None = None
        #: Accepted connections still open, for :meth:`cut_all`.
        self.clients: set[_Client] = set()

    def cut_all(self) -> int:
        """Close every proxied connection at once (SIGUSR1); returns how many."""
        clients = list(self.clients)
        for client in clients:
            client.cut()
        self.stats.cuts += 1
        self.stats.cut_connections += len(clients)
        return len(clients)

    def _accept(self) -> _Client:
        now = self.loop.time()
        # A real client waits one RTT (SYN, SYN-ACK) before its first byte can leave.
        not_before = now + 2 * self.config.delay_ms / 1000.0 if self.config.handshake else 0.0
        up = _Pipe(self, Direction(self.config, self.rng, self.bucket_up, not_before), up=True)
        down = _Pipe(self, Direction(self.config, self.rng, self.bucket_down), up=False)
        up.partner, down.partner = down, up
        return _Client(self, up, down)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await self.loop.create_server(self._accept, host, port, backlog=4096)
        sockname = self.server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def _config_from_args(args: argparse.Namespace) -> LinkConfig:
    return LinkConfig(
        delay_ms=args.delay_ms, jitter_ms=args.jitter_ms, bandwidth_kbps=args.bandwidth_kbps,
        loss_pct=args.loss_pct, rto_ms=args.rto_ms, mss=args.mss, burst_bytes=args.burst_bytes,
        handshake=not args.no_handshake,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m duplexbench.netem.proxy", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", type=parse_hostport, default=("127.0.0.1", 0))
    parser.add_argument("--target", type=parse_hostport, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay, each direction")
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--bandwidth-kbps", type=float, default=0.0, help="per direction, 0 = unlimited")
    parser.add_argument("--loss-pct", type=float, default=0.0, help="per-segment loss, emulated as an RTO stall")
    parser.add_argument("--rto-ms", type=float, default=200.0)
    parser.add_argument("--mss", type=int, default=1448)
    parser.add_argument("--burst-bytes", type=int, default=0)
    parser.add_argument("--no-handshake", action="store_true", help="do not delay a new connection by one RTT")
    parser.add_argument("--seed", type=int, default=None)
    return parser


async def _serve(args: argparse.Namespace) -> None:
    config = _config_from_args(args)
    proxy = ProxyServer(config, args.target, seed=args.seed)
    host, port = await proxy.start(*args.listen)
    print(f"duplexbench netem proxy listening on {host}:{port} -> {args.target[0]}:{args.target[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        proxy.loop.add_signal_handler(signum, stop.set)

    def cut() -> None:
        count = proxy.cut_all()
        print(json.dumps({"event": "cut", "connections": count}), flush=True)

    proxy.loop.add_signal_handler(signal.SIGUSR1, cut)
    started = time.monotonic()
    await stop.wait()
    await proxy.close()
    stats = proxy.stats.as_dict()
    print(json.dumps({"event": "stats", "uptime_s": round(time.monotonic() - started, 3), **stats}), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _config_from_args(args).validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
