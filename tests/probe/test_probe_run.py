"""`run --server-url`: a server started by hand is probed, measured, reported; TLS end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _timeouts import scaled

from duplexbench.probe import Options, probe
from duplexbench.procs.server import ServerProcess
from duplexbench.report.serverinfo import tls_costs
from duplexbench.scenario import parse_scenario

from ._broken import ok_200_in_thread

#: Short points: these tests check what a run records (measured or not, TLS), not figures.
TINY = """
name = "tiny"
transports = [{transports}]
pattern = "fanout"
clients = [3]
rate = [40]
payload_bytes = [32]
warmup_s = 0.3
duration_s = 0.5
drain_s = 0.5
{extra}
"""


def _scenario(tmp_path: Path, transports=('"sse"',), extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(transports=", ".join(transports), extra=extra), encoding="utf-8")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "duplexbench", "run", *args, "--quiet"],
                          capture_output=True, text=True, timeout=scaled(120))


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "summary.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_outside_server_unmeasured_then_measured(start_server, tmp_path) -> None:
    server = start_server("all")
    scenario = _scenario(tmp_path, ('"sse"', '"websocket"'))
    done = _run(str(scenario), "--server-url", server.url, "--out", str(tmp_path / "a"))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _rows(tmp_path / "a")
    assert [r["transport"] for r in rows] == ["sse", "websocket"]
    for row in rows:
        assert row["lost"] == "0" and row["status"] == "ok"
        assert row["server_cpu_pct"] == "" and row["server_rss_mib_max"] == ""  # empty, not zero
        assert row["server_measured"] == "False" and row["tls"] == "False"
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["server"]["measured"] is False and "no --server-pid" in meta["server"]["not_measured"]
    assert meta["probe"]["ok"] is True and (tmp_path / "a" / "probe.json").exists()
    report = (tmp_path / "a" / "report.md").read_text()
    assert "Server CPU and memory: not measured" in report

    done = _run(str(scenario), "--server-url", server.url, "--server-pid", str(server.pid),
                "--out", str(tmp_path / "b"), "--no-report", "--transports", "sse")
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = _rows(tmp_path / "b")
    assert row["server_measured"] == "True" and float(row["server_cpu_s"]) > 0
    assert json.loads((tmp_path / "b" / "meta.json").read_text())["server"]["pinning"].startswith("not touched")


def test_a_server_that_breaks_the_contract_is_refused(tmp_path) -> None:
    with ok_200_in_thread() as url:
        done = _run(str(_scenario(tmp_path)), "--server-url", url, "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "breaks the contract" in done.stderr + done.stdout and "--no-probe" in done.stderr + done.stdout
    assert not (tmp_path / "r" / "meta.json").exists() and (tmp_path / "r" / "probe.json").exists()


@pytest.mark.parametrize("args", [["--server-pid", "1"], ["--no-probe"], ["--ca-file", "x.pem"]])
def test_outside_server_flags_need_a_url(tmp_path, args) -> None:
    done = _run(str(_scenario(tmp_path)), *args, "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "--server-url" in done.stderr + done.stdout


def test_servers_tls_probe_with_and_without_the_ca(tmp_path) -> None:
    tls_dir = tmp_path / "tls"
    server = ServerProcess("all", args=["--tls", "--tls-dir", str(tls_dir)],
                           ca_file=str(tls_dir / "ca.pem")).start()
    try:
        assert server.url.startswith("https://")
        report = probe(Options(server.url, ca_file=str(tls_dir / "ca.pem"), rule_timeout_s=scaled(5)))
        assert report.ok and report.counts()["pass"] > 40
        done = subprocess.run([sys.executable, "-m", "duplexbench", "probe", server.url],
                              capture_output=True, text=True, timeout=scaled(30))
        assert done.returncode == 2 and "certificate" in done.stderr and "--ca-file" in done.stderr
    finally:
        server.stop()


def test_scenario_tls_sweep_doubles_the_points() -> None:
    scenario = parse_scenario({"name": "t", "transports": ["sse", "websocket"], "clients": [2],
                               "rate": [10], "payload_bytes": [16], "server": {"tls": [False, True]}})
    assert [(p.transport, p.tls) for p in scenario.points()] == [
        ("sse", False), ("sse", True), ("websocket", False), ("websocket", True)]
    assert scenario.points()[1].label.endswith(" tls")
    assert parse_scenario(scenario.to_dict()).server.tls == (False, True)


def test_tls_costs_per_transport() -> None:
    frame = pd.DataFrame({
        "transport": ["sse", "sse"], "clients": [10, 10], "rate_msgs_s": [100.0, 100.0],
        "payload_bytes": [64, 64], "tls": [False, True], "delivered": [1000, 1000],
        "server_cpu_s": [0.010, 0.015], "client_cpu_s": [0.020, 0.021],
        "ip_bytes_down_per_msg": [150.0, 180.0], "status": ["ok", "ok"]})
    (row,) = tls_costs(frame)
    assert row["server_us_extra"] == pytest.approx(5.0) and row["client_us_extra"] == pytest.approx(1.0)
    assert row["ip_bytes_down_per_msg_extra"] == pytest.approx(30.0)
    assert row["not_comparable"] == ""
    assert tls_costs(frame[frame["tls"] == False]) == []  # noqa: E712
    (row,) = tls_costs(frame.assign(validity=["ok", "loadgen-saturated"]))
    assert row["not_comparable"] == "loadgen-saturated"


def test_tls_sweep_spawned_servers(tmp_path) -> None:
    """Every client kind over TLS (HTTP subscriber, picows subscriber, POST and WS publishers)."""
    scenario = _scenario(tmp_path, ('"longpoll"', '"websocket"'),
                         'upstream = "transport"\n[server]\ntls = [false, true]\n')
    done = _run(str(scenario), "--out", str(tmp_path / "t"))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _rows(tmp_path / "t")
    assert [(r["transport"], r["tls"]) for r in rows] == [
        ("longpoll", "False"), ("longpoll", "True"), ("websocket", "False"), ("websocket", "True")]
    assert all(r["lost"] == "0" and r["server_measured"] == "True" for r in rows)
    assert (tmp_path / "t" / "tls" / "ca.pem").exists()
    report = (tmp_path / "t" / "report.md").read_text()
    assert "TLS on websocket" in report and "per delivered message" in report


def test_outside_https_server_with_ca_file(tmp_path) -> None:
    tls_dir = tmp_path / "tls"
    server = ServerProcess("all", args=["--tls", "--tls-dir", str(tls_dir)],
                           ca_file=str(tls_dir / "ca.pem")).start()
    try:
        done = _run(str(_scenario(tmp_path, ('"ndjson"',))), "--server-url", server.url,
                    "--ca-file", str(tls_dir / "ca.pem"), "--out", str(tmp_path / "h"), "--no-report")
        assert done.returncode == 0, done.stdout + done.stderr
        (row,) = _rows(tmp_path / "h")
        assert row["tls"] == "True" and row["lost"] == "0" and row["server_measured"] == "False"
        done = _run(str(_scenario(tmp_path, ('"ndjson"',))), "--server-url", server.url,
                    "--out", str(tmp_path / "n"))
        assert done.returncode == 2 and "--ca-file" in done.stdout + done.stderr
    finally:
        server.stop()
