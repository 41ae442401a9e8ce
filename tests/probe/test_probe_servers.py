"""The probe against the project's own servers: the contract's first test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _timeouts import scaled

from duplexbench.probe import RULES, Options, format_report, probe

from ._broken import ALLOWED, ok_200_in_thread

SERVER_ARGS = ["--heartbeat", "0.5", "--retention", "12", "--allow-origin", ALLOWED]


def test_every_rule_passes_against_servers_all(start_server) -> None:
    server = start_server("all", args=SERVER_ARGS)
    # The aiohttp servers speak HTTP/1.1 only: the h2 rules pass through nginx
    # (tests/proxies/test_nginx_h2.py) and on the Node reference (tests/node/test_node_h2.py).
    report = probe(Options(server.url, heartbeat_s=0.5, retention=12, allowed_origin=ALLOWED,
                           rule_timeout_s=scaled(5), skip=("h2*",)))
    assert report.mounted == ("longpoll", "stream", "websocket", "tcp")
    assert report.ok, format_report(report)
    assert [r.rule.id for r in report.results if r.status != "pass"] == []
    assert len(report.results) == len([r for r in RULES if not r.id.startswith("h2")])
    assert report.elapsed_s < scaled(20)


@pytest.mark.parametrize("transport", ["longpoll", "stream", "websocket", "tcp"])
def test_unmounted_transports_are_skipped(start_server, transport) -> None:
    server = start_server(transport, args=SERVER_ARGS)
    report = probe(Options(server.url, only=("poll.batch", "sse.headers-first", "ws.ping", "tcp.lines",
                                             "health.ok"), rule_timeout_s=scaled(5)))
    assert report.mounted == (transport,)
    status = {r.rule.id: r.status for r in report.results}
    mine = {"longpoll": "poll.batch", "stream": "sse.headers-first", "websocket": "ws.ping",
            "tcp": "tcp.lines"}[transport]
    assert status.pop(mine) == "pass" and status.pop("health.ok") == "pass"
    assert set(status.values()) == {"skip"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "duplexbench", "probe", *args],
                          capture_output=True, text=True, timeout=scaled(60))


def test_cli_exit_status_and_json(start_server, tmp_path) -> None:
    server = start_server("all")
    out = tmp_path / "probe.json"
    done = _cli(server.url, "--only", "health.*", "--only", "poll.*", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  poll.batch" in done.stdout and "skip  poll.retention" in done.stdout
    assert json.loads(out.read_text())["ok"] is True


def test_cli_names_broken_rules_of_a_200_server() -> None:
    with ok_200_in_thread() as url:
        done = _cli(url)
    assert done.returncode == 1, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert "BREAKS THE CONTRACT" in summary and "http.404" in summary and "publish.seq" in summary
    assert "FAIL  health.epoch" in done.stdout and "expected:" in done.stdout


def test_unreachable_server_is_exit_2() -> None:
    done = _cli("http://127.0.0.1:9")
    assert done.returncode == 2 and "cannot reach" in done.stderr
