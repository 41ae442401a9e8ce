"""Workers behind Redis through the harness: ``duplexbench run`` with ``[server] workers = 2``.

The suite starts Redis per point (its version in meta.json, pinned beside the server),
gives the server its flags, samples Redis as ``broker``, scrapes every worker, and stops
everything: two workers deliver every message once and in order (lost = 0, no duplicate,
no reorder) to subscribers spread over both, and the row has the broker's figures. An
outside 2-worker server (``--server-url``) is read from its /healthz.
"""

from __future__ import annotations

import json

import psutil
import pytest

from duplexbench.broker import RedisProcess
from duplexbench.commands import run as run_command
from duplexbench.measure.results import load_run
from duplexbench.procs.server import ServerProcess
from duplexbench.runner import loop
from tests._scenarios import tiny_scenario
from tests.runner.helpers import no_children_left


def _scenario(tmp_path, transports, **server) -> str:
    path = tmp_path / "w.toml"
    path.write_text(tiny_scenario("w", transports=transports, clients=8, rate=100.0,
                                  tables={"server": server} if server else None))
    return str(path)


def _run(argv: list[str]) -> tuple:
    code = run_command.main([*argv, "--no-report", "--quiet"])
    out = argv[argv.index("--out") + 1]
    return code, load_run(out), json.loads(open(f"{out}/meta.json").read())


@pytest.mark.slow
def test_two_workers_behind_redis_deliver_everything_and_leave_nothing(tmp_path):
    out = tmp_path / "run"
    code, run, meta = _run([_scenario(tmp_path, ["longpoll", "websocket"], workers=2,
                                      broker="redis"), "--out", str(out)])
    summary = run.summary
    shown = summary.to_string()
    assert code == loop.EXIT_OK, shown
    assert list(summary["workers"]) == [2, 2] and list(summary["broker"]) == ["redis", "redis"]
    for column in ("lost", "duplicated", "reordered", "worker_restarts"):
        assert (summary[column] == 0).all(), (column, shown)
    assert (summary["delivered"] == summary["expected"]).all() and (summary["delivered"] > 0).all()
    assert (summary["validity"] == "ok").all(), shown
    # The broker's figures: Redis's CPU apart, the latency split at the broker.
    assert (summary["broker_cpu_s"] > 0).all() and (summary["server_cpu_s"] > 0).all()
    assert (summary["server_core_cpu_pct"] > summary["server_cpu_pct"]).all()
    assert (summary["broker_transit_p50_ms"] > 0).all()
    assert (summary["broker_transit_p99_ms"] >= summary["broker_transit_p50_ms"]).all()
    assert (summary["broker_publish_p50_ms"] > 0).all()
    # Every message read back by both workers (each follows the topic for its subscribers).
    assert summary["broker_reads_per_msg"].between(1.9, 2.1).all(), shown
    load = run.load()
    assert {"server", "loadgen", "broker"} <= set(load["process"])
    # meta.json: Redis's version, the placement rule, each process's cores as the kernel has them.
    assert meta["broker"]["version"] and "one core" in meta["broker"]["placement"]
    server_core = meta["affinity"]["server"]
    for point in meta["server_workers"]:
        assert point["workers"] == 2 and point["redis"]["url"].startswith("redis://127.0.0.1:")
        affinity = point["affinity"]
        assert len(affinity["workers"]) == 2
        assert affinity["redis"] == affinity["server"] == server_core
        assert all(cores == server_core for cores in affinity["workers"].values())
        # Started and stopped by the suite: nothing of it is left.
        assert not psutil.pid_exists(point["redis"]["pid"])
    assert no_children_left() == []


@pytest.mark.slow
def test_an_outside_multi_worker_server_is_read_from_its_healthz(tmp_path):
    with RedisProcess() as redis, ServerProcess(
            "all", args=["--workers", "2", "--broker", "redis", "--redis-url", redis.url]) as server:
        out = tmp_path / "run"
        code, run, meta = _run([_scenario(tmp_path, ["sse"]), "--out", str(out), "--server-url",
                                server.url, "--server-pid", str(server.pid)])
    row = run.summary.iloc[0]
    assert code == loop.EXIT_OK, run.summary.to_string()
    assert (row["workers"], row["broker"]) == (2, "redis") and row["lost"] == 0
    assert row["broker_transit_p50_ms"] > 0 and row["broker_reads_per_msg"] > 0
    assert row["broker_cpu_s"] != row["broker_cpu_s"]  # NaN: that Redis is not ours to sample
    assert meta["server_workers"][0]["source"] == "/healthz"
    # A scenario that asks for workers cannot be pointed at an outside server.
    refused = run_command.main([_scenario(tmp_path, ["sse"], workers=2, broker="redis"),
                                "--out", str(tmp_path / "no"), "--server-url", "http://127.0.0.1:9"])
    assert refused == loop.EXIT_USAGE
