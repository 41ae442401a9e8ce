"""The A/B gate's decisions before any statistics: failed points, and whose they are."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from duplexbench.compare.ab import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_REGRESSION,
    Side,
    failure_verdict,
)
from duplexbench.runner.outcome import PointResult
from duplexbench.scenario import LoadPoint


def _side(name: str, role: str, failed: tuple[str, ...] = ()) -> Side:
    results = []
    for index, transport in enumerate(("sse", "websocket")):
        point = LoadPoint(index=index, repeat=0, transport=transport, clients=10, rate=100,
                          payload_bytes=64, delay_ms=0, keepalive=True)
        bad = transport in failed
        results.append(PointResult(point, {"status": "failed" if bad else "ok"}, measured=not bad,
                                   reason="server exited with code 1" if bad else ""))
    return Side(name, role, SimpleNamespace(results=results))


def test_a_point_failing_only_in_the_current_version_is_a_regression():
    code, text = failure_verdict(_side("A", "base"), _side("B", "current", ("websocket",)), "")
    assert code == EXIT_REGRESSION
    assert text.startswith("REGRESSION: websocket point failed in the current version only")
    assert "server exited with code 1" in text


def test_a_failing_base_point_means_no_comparison():
    code, text = failure_verdict(_side("A", "base", ("sse",)), _side("B", "current"), "")
    assert code == EXIT_INPUT and "base version failed 1 point" in text


def test_no_failure_goes_on_to_the_statistics():
    assert failure_verdict(_side("A", "base"), _side("B", "current"), "") == (EXIT_OK, "")
    assert failure_verdict(_side("A", "base"), _side("B", "current"), "stopped")[0] == EXIT_INPUT


def test_run_refuses_a_server_src_without_servers(tmp_path, capsys):
    from duplexbench.commands import run as run_command

    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "ab.toml"
    assert run_command.main([str(scenario), "--server-src", str(tmp_path),
                        "--out", str(tmp_path / "run")]) == 2
    assert "no servers/__main__.py there" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
