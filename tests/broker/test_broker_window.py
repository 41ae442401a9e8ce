"""A measured window of the workers' broker series (differences, sums, restarted workers), and
the memory each subscriber connection added (duplexbench/broker/extension.py)."""

from __future__ import annotations

import math

import pytest

from duplexbench.broker.scrape import WorkerMetrics
from duplexbench.broker.window import window


def _metrics(pid: int, worker: int, below_1ms: int, total: int, seconds: float, read: int,
             publishes: int = 0) -> WorkerMetrics:
    lines = [f'duplexbench_worker_info{{worker="{worker}",workers="2",pid="{pid}",broker="redis"}} 1']
    for name, count, s in (("broker_transit_seconds", total, seconds),
                           ("broker_publish_seconds", publishes, 0.001 * publishes)):
        lines += [f'duplexbench_{name}_bucket{{le="0.001"}} {min(below_1ms, count)}',
                  f'duplexbench_{name}_bucket{{le="0.01"}} {count}',
                  f'duplexbench_{name}_bucket{{le="+Inf"}} {count}',
                  f"duplexbench_{name}_sum {s}", f"duplexbench_{name}_count {count}"]
    lines.append(f"duplexbench_broker_messages_read_total {read}")
    return WorkerMetrics(pid, worker, "\n".join(lines) + "\n")


def test_two_workers_summed_over_the_window():
    before = {10: _metrics(10, 0, 5, 5, 0.002, 5), 11: _metrics(11, 1, 5, 5, 0.002, 5)}
    after = {10: _metrics(10, 0, 105, 105, 0.052, 105, 50),
             11: _metrics(11, 1, 100, 110, 0.102, 110)}
    measured = window(before, after)
    assert measured.transit.count == 205 and measured.messages_read == 205
    assert measured.transit.sum == pytest.approx(0.15)
    assert measured.mean_ms("transit") == pytest.approx(0.15 / 205 * 1000)
    assert measured.quantile_ms("transit", 0.5) <= 1.0 < measured.quantile_ms("transit", 0.99)
    assert measured.publish.count == 50
    assert measured.restarted == () and measured.gone == ()


def test_a_restarted_worker_counts_whole_and_the_killed_one_is_named():
    before = {10: _metrics(10, 0, 5, 5, 0.002, 5), 11: _metrics(11, 1, 5, 5, 0.002, 5)}
    after = {10: _metrics(10, 0, 55, 55, 0.02, 55), 12: _metrics(12, 1, 30, 30, 0.01, 30)}
    measured = window(before, after)
    assert measured.transit.count == 50 + 30 and measured.messages_read == 80
    assert measured.restarted == (12,) and measured.gone == (11,)


def test_the_one_process_server_has_no_broker_figures():
    plain = {0: WorkerMetrics(0, 0, "duplexbench_connections 3\n")}
    measured = window(plain, plain)
    assert measured.transit is None and measured.publish is None
    assert math.isnan(measured.quantile_ms("transit", 0.5)) and math.isnan(measured.mean_ms("publish"))


def test_memory_per_connection_from_the_connect_phase():
    import pandas as pd

    from duplexbench.broker.extension import connection_memory_kib

    load = pd.DataFrame({
        "process": ["server"] * 4 + ["loadgen"],
        "phase": ["connect", "connect", "connect", "measure", "connect"],
        "t_s": [0.0, 0.5, 1.0, 2.0, 0.0],
        "rss_mib": [40.0, 40.5, 41.0, 60.0, 10.0],  # the measure phase's growth is messages
    })
    assert connection_memory_kib(load, 64) == pytest.approx(1.0 * 1024 / 64)
    assert math.isnan(connection_memory_kib(load, 5))  # too few subscribers to say
    assert math.isnan(connection_memory_kib(load.iloc[:1], 64))
