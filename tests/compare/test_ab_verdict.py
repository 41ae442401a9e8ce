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


def test_server_cpu_per_message_gates_in_ab_mode_only(make_run):
    # +20 % server CPU per delivered message on sse; repeat levels drift by 13 % (shared by
    # each pair), each run's own noise is 2 %.
    from duplexbench.compare.runs import compare_runs, resolve_run

    from .synthetic import Model

    base = resolve_run(make_run("base", Model(repeats=4), seed=1))
    slower = resolve_run(make_run("cur", Model(repeats=4, cpu={"sse": 1.2}), seed=2))
    paired = compare_runs(base, slower, paired=True)
    named = [(r.transport, r.metric) for r in paired.regressions]
    # sse, and the average over both transports (+10 %: websocket moved by noise alone).
    assert named[0] == ("sse", "server_cpu_us_per_msg"), named
    assert set(named) <= {("sse", "server_cpu_us_per_msg"), ("all", "server_cpu_us_per_msg")}
    row = next(r for r in paired.rows if r.regression)
    assert 0.1 < row.verdict.change < 0.3 and "pairs' noise" in row.verdict.reason
    assert any("server_cpu_us_per_msg judged against the pairs' noise" in n for n in paired.notes)
    # Against a committed baseline (no pairs) it is shown, never gating.
    plain = compare_runs(base, slower)
    assert not plain.regressions
    assert any(r.metric == "server_cpu_us_per_msg" and not r.gated for r in plain.rows)
    # The same build: nothing.
    same = resolve_run(make_run("same", Model(repeats=4), seed=3))
    assert not compare_runs(base, same, paired=True).regressions


def test_each_point_is_judged_at_alpha_over_the_points_and_the_pooled_row_at_alpha(make_run):
    # Four points ask the same question of one run: judged each at alpha, the gate would raise
    # four times the false alarms of one (measured: 2 A/A false alarms in 10 gate-power rounds).
    import re

    from scipy import stats

    from duplexbench.compare.runs import compare_runs, point_alpha, resolve_run

    from .synthetic import Model

    model = Model(transports=("longpoll", "sse", "ndjson", "websocket"), repeats=4)
    base = resolve_run(make_run("base", model, seed=1))
    cur = resolve_run(make_run("cur", Model(**{**model.__dict__, "cpu": {"sse": 1.3}}), seed=2))
    judged = compare_runs(base, cur, paired=True, alpha=0.01)
    assert point_alpha(0.01, 4) == 0.0025 and point_alpha(0.01, 0) == 0.01
    assert any("at alpha 0.0025 (= 0.01 / 4 points" in n for n in judged.notes), judged.notes
    dof = int(re.search(r"server_cpu_us_per_msg judged against the pairs' noise: .*?(\d+) dof",
                        "\n".join(judged.notes)).group(1))

    def k_of(row):
        return float(re.search(r"\(([\d.]+) x ", row.verdict.reason).group(1))

    cpu_rows = {r.transport: r for r in judged.rows if r.metric == "server_cpu_us_per_msg"}
    assert k_of(cpu_rows["sse"]) == round(stats.t.ppf(1 - 0.0025 / 2, dof), 2)
    assert k_of(cpu_rows["all"]) == round(stats.t.ppf(1 - 0.01 / 2, dof), 2)
    assert cpu_rows["sse"].regression  # +30 % with 2 % noise per run is still named
