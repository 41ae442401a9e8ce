"""How fast is this machine at the thing we measure? A raw TCP echo on loopback.

Latency on loopback is mostly CPU time in the event loop, the kernel's TCP stack and the
scheduler. A slower or busier machine raises every transport's latency by roughly the same
factor, and a regression gate comparing a baseline from one machine with a run on another would
read that factor as a regression. The runner calls ``measure_tcp_echo()`` once per run and stores
the result in ``meta.json["calibration"]``; ``compare --normalize`` divides latencies by the
ratio of the two runs' echo round trips (see docs/regression.md for when that helps and when not).

The echo uses the bare asyncio Protocol API (no HTTP, no framing), small messages, TCP_NODELAY,
one message in flight: it measures the platform, not duplexbench. It runs on its own event loop
in its own thread, so it may be called from inside a running loop.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from duplexbench.tcp import set_nodelay

__all__ = ["measure_tcp_echo"]

#: Small, like a compact envelope; large enough not to be a degenerate 1-byte case.
MESSAGE = b"x" * 64
#: Round trips discarded first: connection set-up, cold caches, CPU frequency ramp-up.
WARMUP_ROUND_TRIPS = 200


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _Client(asyncio.Protocol):
    """Sends one message, waits until all of it came back, records the round trip."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending = 0
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.pending -= len(data)
        if self.pending <= 0 and self.waiter and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("echo connection lost"))

    async def round_trip(self) -> int:
        self.waiter = self.loop.create_future()
        self.pending = len(MESSAGE)
        start = time.perf_counter_ns()
        self.transport.write(MESSAGE)
        await self.waiter
        return time.perf_counter_ns() - start


async def _measure(duration_s: float) -> list[int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, client = await loop.create_connection(lambda: _Client(loop), "127.0.0.1", port)
    try:
        for _ in range(WARMUP_ROUND_TRIPS):
            await client.round_trip()
        rtts: list[int] = []
        end = time.perf_counter() + duration_s
        while time.perf_counter() < end:
            rtts.append(await client.round_trip())
        return rtts
    finally:
        transport.close()
        server.close()
        await server.wait_closed()


def measure_tcp_echo(duration_s: float = 1.0) -> dict:
    """Round-trip time of a 64-byte TCP echo on 127.0.0.1 for ``duration_s`` seconds.

    Returns ``{"tcp_echo_rtt_us_p50", "tcp_echo_rtt_us_p99", "tcp_echo_rtt_us_mean", "samples",
    "duration_s", "message_bytes"}``; raises RuntimeError if no round trip completed.
    """
    result: dict = {}

    def work() -> None:
        try:
            result["rtts"] = asyncio.run(_measure(duration_s))
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=work, name="duplexbench-calibration", daemon=True)
    thread.start()
    thread.join(timeout=duration_s + 30)
    if thread.is_alive():
        raise RuntimeError("TCP echo calibration did not finish in time")
    if "error" in result:
        raise RuntimeError(f"TCP echo calibration failed: {result['error']!r}") from result["error"]
    rtts = np.asarray(result["rtts"], dtype=float) / 1000.0
    if len(rtts) == 0:
        raise RuntimeError("TCP echo calibration completed no round trip")
    return {
        "tcp_echo_rtt_us_p50": round(float(np.percentile(rtts, 50)), 3),
        "tcp_echo_rtt_us_p99": round(float(np.percentile(rtts, 99)), 3),
        "tcp_echo_rtt_us_mean": round(float(rtts.mean()), 3),
        "samples": int(len(rtts)),
        "duration_s": float(duration_s),
        "message_bytes": len(MESSAGE),
    }
