"""The TCP echo calibration: plausible numbers, callable from inside a running event loop."""

from __future__ import annotations

import asyncio

from duplexbench.calibration import measure_tcp_echo


def test_echo_round_trip_is_measured():
    result = measure_tcp_echo(duration_s=0.2)
    assert result["samples"] > 50
    assert 0 < result["tcp_echo_rtt_us_p50"] <= result["tcp_echo_rtt_us_p99"] < 1_000_000
    assert result["message_bytes"] == 64


def test_callable_from_a_running_loop():
    # The runner is asyncio code: the calibration must not need (or break) the caller's loop.
    async def inside() -> dict:
        return measure_tcp_echo(duration_s=0.1)

    assert asyncio.run(inside())["samples"] > 0
