"""How fast is this machine at the thing we measure? A raw TCP echo on loopback.

Latency on loopback is mostly CPU time in the event loop, the kernel's TCP stack and the
scheduler. A slower or busier machine raises every transport's latency by roughly the same
factor, and a regression gate comparing a baseline from one machine with a run on another would
read that factor as a regression. The runner calls ``calibrate()`` once per run and stores the
result in ``meta.json["calibration"]``; ``compare --normalize`` divides latencies by the ratio of
the two runs' echo round trips (see docs/regression.md for when that helps and when not).

Two figures, because the floor depends on the regime it is measured in:

- **At the scenario's rate** (``echo_at_rate_us_p50``; what ``--normalize`` uses): the echo
  server in its own process pinned to the server's core, the client pinned to the load
  generator's core, one round trip every ``1/rate`` s. Like a scenario's deliveries, each side
  wakes from idle for every message: on a 2-core machine p50 is ~236 us at 100 msg/s against
  ~63 us back to back, so only this figure describes the same regime as the latencies it scales.
- **Hot loop** (``tcp_echo_rtt_us_p50``, kept as a second number and for runs recorded before
  the at-rate figure existed): server and client on one event loop, the next round trip sent
  as soon as the last returns: the platform's best case.

Both use the bare asyncio Protocol API (no HTTP, no framing), 64-byte messages, TCP_NODELAY, one
message in flight: they measure the platform, not duplexbench. The clients run on their own event
loop in their own thread, so they may be called from inside a running loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np

from ..tcp import set_nodelay

__all__ = ["at_rate_duration", "calibrate", "measure_echo_at_rate", "measure_tcp_echo"]

#: Small, like a compact envelope; large enough not to be a degenerate 1-byte case.
MESSAGE = b"x" * 64
#: Round trips discarded first: connection set-up, cold caches, CPU frequency ramp-up.
WARMUP_ROUND_TRIPS = 200
#: Paced round trips wanted at the scenario's rate (p50 from 300 samples: +-~3 % of the value);
#: the duration follows from the rate, within these bounds (a 1 msg/s scenario must not cost
#: minutes: its floor is then estimated from fewer samples, recorded in ``samples``).
AT_RATE_SAMPLES = 250
AT_RATE_MIN_S, AT_RATE_MAX_S = 1.0, 3.0
#: Paced round trips dropped first (connection set-up, first wake-ups).
AT_RATE_WARMUP = 20


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
    result = {"rtts": _in_thread(lambda: _measure(duration_s), duration_s + 30)}
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


def _in_thread(make: Callable[[], Coroutine[Any, Any, list[int]]], timeout: float,
               cpu: int | None = None) -> list[int]:
    """Run a coroutine on a fresh loop in a fresh thread (pinned to ``cpu`` when given)."""
    result: dict = {}

    def work() -> None:
        try:
            if cpu is not None and hasattr(os, "sched_setaffinity"):
                # pid 0 = the calling *thread* on Linux: only this client moves, not the caller.
                os.sched_setaffinity(0, {cpu})
            result["rtts"] = asyncio.run(make())
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=work, name="duplexbench-calibration", daemon=True)
    thread.start()
    thread.join(timeout=timeout)
    if thread.is_alive():
        raise RuntimeError("TCP echo calibration did not finish in time")
    if "error" in result:
        raise RuntimeError(f"TCP echo calibration failed: {result['error']!r}") from result["error"]
    return result["rtts"]


def at_rate_duration(rate_hz: float) -> float:
    """Seconds of paced round trips for ``AT_RATE_SAMPLES`` at ``rate_hz`` (bounded)."""
    return min(AT_RATE_MAX_S, max(AT_RATE_MIN_S, (AT_RATE_SAMPLES + AT_RATE_WARMUP) / rate_hz))


async def _paced(port: int, rate_hz: float, duration_s: float) -> list[int]:
    """One round trip every 1/rate s (a late one does not cause a burst: missed slots are skipped)."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(lambda: _Client(loop), "127.0.0.1", port)
    try:
        interval = 1.0 / rate_hz
        rtts: list[int] = []
        start = time.perf_counter()
        slot = 0
        while True:
            due = start + slot * interval
            now = time.perf_counter()
            if due - now > 0:
                await asyncio.sleep(due - now)
            if time.perf_counter() - start >= duration_s:
                return rtts[AT_RATE_WARMUP:] if len(rtts) > 2 * AT_RATE_WARMUP else rtts
            rtts.append(await client.round_trip())
            slot = max(slot + 1, int((time.perf_counter() - start) / interval) + 1)
    finally:
        transport.close()


def _serve_echo() -> None:
    """``python -m duplexbench.machine.calibration --serve``: echo until SIGTERM; prints the port first."""
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Echo, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        await stop
        server.close()

    asyncio.run(serve())


def measure_echo_at_rate(rate_hz: float, *, server_cpu: int | None = None,
                         client_cpu: int | None = None, duration_s: float | None = None) -> dict:
    """Round trip of a 64-byte echo at ``rate_hz``, echo server pinned to ``server_cpu`` in its
    own process, client pinned to ``client_cpu``: the floor in a scenario's regime.

    Returns ``{"echo_at_rate_us_p50", "echo_at_rate_us_p99", "echo_at_rate": {rate_hz,
    server_cpu, client_cpu, samples, duration_s}}``; raises RuntimeError when it cannot measure.
    """
    if not (rate_hz > 0):
        raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
    duration = at_rate_duration(rate_hz) if duration_s is None else duration_s
    from ..procs import dying_with_parent  # the echo server dies with its parent

    server = subprocess.Popen(
        dying_with_parent([sys.executable, "-m", "duplexbench.machine.calibration", "--serve"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        start_new_session=True)
    try:
        if server_cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(server.pid, {server_cpu})
        line = server.stdout.readline().strip() if server.stdout else ""
        if not line.isdigit():
            err = server.stderr.read() if server.stderr and server.poll() is not None else ""
            raise RuntimeError(f"echo server did not start: {line!r} {err[-500:]}")
        rtts = _in_thread(lambda: _paced(int(line), rate_hz, duration), duration + 30, client_cpu)
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    values = np.asarray(rtts, dtype=float) / 1000.0
    if len(values) == 0:
        raise RuntimeError("paced TCP echo completed no round trip")
    return {
        "echo_at_rate_us_p50": round(float(np.percentile(values, 50)), 3),
        "echo_at_rate_us_p99": round(float(np.percentile(values, 99)), 3),
        "echo_at_rate": {"rate_hz": float(rate_hz), "server_cpu": server_cpu,
                         "client_cpu": client_cpu, "samples": int(len(values)),
                         "duration_s": float(duration), "message_bytes": len(MESSAGE),
                         "server": "own process (asyncio), like the server under test"},
    }


def calibrate(rate_hz: float | None, server_cpu: int | None = None,
              client_cpu: int | None = None) -> dict:
    """Both figures for ``meta.json["calibration"]``: the hot loop (top-level
    ``tcp_echo_rtt_us_*``, as before) and the echo at the scenario's rate and pinning
    (``echo_at_rate_us_*``; skipped, with ``echo_at_rate_error``, if it cannot run)."""
    result = measure_tcp_echo()
    if rate_hz:
        try:
            result.update(measure_echo_at_rate(rate_hz, server_cpu=server_cpu,
                                               client_cpu=client_cpu))
        except (RuntimeError, OSError) as exc:
            result["echo_at_rate_error"] = str(exc)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m duplexbench.machine.calibration",
                                     description="TCP echo calibration (see module docstring)")
    parser.add_argument("--serve", action="store_true", help="run the echo server (internal)")
    parser.add_argument("--rate", type=float, default=100.0, help="paced round trips per second")
    args = parser.parse_args()
    if args.serve:
        _serve_echo()
    else:
        import json

        print(json.dumps(calibrate(args.rate, 0, 1), indent=2))
