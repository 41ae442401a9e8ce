"""The suite's Redis (duplexbench/broker/redis.py): loopback only, nothing saved, pinned,
stopped without a trace; and reading histograms off /metrics (duplexbench/broker/scrape.py)."""

from __future__ import annotations

import math
import os
import re
import signal

import psutil
import pytest
import redis

from duplexbench.broker import Histogram, RedisMissing, RedisProcess, histogram_quantile
from duplexbench.broker.scrape import WorkerMetrics
from _parts import needs


@needs("redis")
def test_starts_on_loopback_without_persistence_and_stops_clean():
    cpu = max(os.sched_getaffinity(0))
    proc = RedisProcess(cpu=cpu).start()
    pid, directory = proc.pid, proc.data_dir
    try:
        assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", proc.url) and proc.port > 0
        assert re.fullmatch(r"\d+\.\d+\.\d+", proc.version())
        client = redis.Redis.from_url(proc.url)
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        client.close()
        listening = [c.laddr for c in psutil.Process(pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}
        # Pinned before Redis started its threads: every thread has the core.
        for thread in psutil.Process(pid).threads():
            assert os.sched_getaffinity(thread.id) == {cpu}
        assert directory.is_dir()
    finally:
        proc.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not directory.exists()
    assert not proc.ping()


@needs("redis")
def test_a_given_directory_that_existed_is_kept(tmp_path):
    with RedisProcess(data_dir=tmp_path) as proc:
        assert proc.data_dir == tmp_path and proc.ping()
    assert tmp_path.is_dir()


@needs("redis")
def test_stop_after_it_died_is_quiet():
    proc = RedisProcess().start()
    directory = proc.data_dir
    os.kill(proc.pid, signal.SIGKILL)
    proc.stop()
    assert not directory.exists()


def test_missing_binary_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # the finder searches PATH
    with pytest.raises(RedisMissing, match="apt-get install redis-server"):
        RedisProcess(binary="/nonexistent/redis-server").start()


METRICS = """\
duplexbench_broker_transit_seconds_bucket{le="0.0001"} 2
duplexbench_broker_transit_seconds_bucket{le="0.001"} 8
duplexbench_broker_transit_seconds_bucket{le="0.01"} 10
duplexbench_broker_transit_seconds_bucket{le="+Inf"} 10
duplexbench_broker_transit_seconds_sum 0.012
duplexbench_broker_transit_seconds_count 10
"""


def test_histograms_from_metrics_text():
    h = WorkerMetrics(1, 0, METRICS).histogram("broker_transit_seconds")
    assert h.count == 10 and h.mean == pytest.approx(0.0012)
    # The median: the 5th of 10, in the second bucket (2 below it, 6 inside).
    assert h.quantile(0.5) == pytest.approx(0.0001 + 0.0009 * 3 / 6)
    assert h.quantile(1.0) == pytest.approx(0.01)
    earlier = Histogram(((0.0001, 1), (0.001, 1), (0.01, 1), (math.inf, 1)), 0.001, 1)
    window = h - earlier
    assert window.count == 9 and window.buckets[0] == (0.0001, 1)
    assert (window + earlier).buckets == h.buckets
    assert math.isnan(histogram_quantile(0.5, [(math.inf, 0)]))
    assert histogram_quantile(0.99, [(0.001, 1), (math.inf, 100)]) == 0.001  # in +Inf
