"""The TCP echo calibration: plausible numbers, callable from inside a running event loop."""

from __future__ import annotations

import asyncio

from duplexbench.machine.calibration import measure_tcp_echo


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


def test_echo_at_the_scenarios_rate_is_paced_and_pinned():
    import os

    from duplexbench.machine.calibration import measure_echo_at_rate

    cpus = sorted(os.sched_getaffinity(0))
    before = set(cpus)
    server_cpu, client_cpu = cpus[0], cpus[-1]
    result = measure_echo_at_rate(200.0, server_cpu=server_cpu, client_cpu=client_cpu,
                                  duration_s=0.6)
    info = result["echo_at_rate"]
    # Paced: ~200/s for 0.6 s minus the warm-up, not the tens of thousands of a hot loop.
    # Fewer when both pinned cores are busy with other tests (a late round trip skips the
    # slots it missed: 35 of ~100 beside a loaded `make test`), never more.
    assert 10 <= info["samples"] <= 130, info
    assert info["rate_hz"] == 200.0 and info["server_cpu"] == server_cpu
    assert 0 < result["echo_at_rate_us_p50"] <= result["echo_at_rate_us_p99"] < 1_000_000
    # Only the calibration's own thread was pinned, not the caller.
    assert set(os.sched_getaffinity(0)) == before


def test_calibrate_keeps_the_hot_figure_beside_the_paced_one():
    from duplexbench.machine.calibration import calibrate

    result = calibrate(500.0)
    assert result["tcp_echo_rtt_us_p50"] > 0 and result["echo_at_rate_us_p50"] > 0
    assert result["echo_at_rate"]["rate_hz"] == 500.0
