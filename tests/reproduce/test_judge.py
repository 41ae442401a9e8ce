"""reproduce's verdicts on synthetic findings: held, moved, contradicted, coverage, calibration."""

from __future__ import annotations

import math

import pytest

from duplexbench.reproduce.judge import (
    RunRecord,
    calibration,
    coverage,
    judge,
    outcome,
    pair_ratio,
    ratio_calibration,
    verdict,
)

POINT = {"clients": 50.0, "rate_msgs_s": 200.0, "payload_bytes": 64.0, "delay_ms": 0.0}


def _figure(metric, transport, value, lo=None, hi=None, se=0.05):
    return {"metric": metric, "transport": transport, "point": dict(POINT), "value": value,
            "lo": lo, "hi": hi, "se_within": se, "repeats": 1, "validity": "ok"}


def _finding(metric, best, worst, ratio, lo, hi, kind="compare"):
    return {"kind": kind, "metric": metric, "point": dict(POINT), "best": best, "worst": worst,
            "ratio": ratio, "lo": lo, "hi": hi, "repeats": 1, "values": [], "text": "..."}


def _run(label, cpu_ws, cpu_lp, findings=None):
    """A run measuring server CPU per message for WebSocket and long polling."""
    figures = [_figure("server_cpu_s_per_1k", "websocket", cpu_ws, cpu_ws * 0.8, cpu_ws * 1.25),
               _figure("server_cpu_s_per_1k", "longpoll", cpu_lp, cpu_lp * 0.8, cpu_lp * 1.25)]
    (best, low), (worst, high) = sorted((("websocket", cpu_ws), ("longpoll", cpu_lp)),
                                        key=lambda tv: tv[1])
    ratio = high / low
    if findings is None:
        findings = [_finding("server_cpu_s_per_1k", best, worst, ratio, ratio * 0.75,
                             ratio * 1.33)]
    return RunRecord(label, f"/x/{label}", 0, {"findings": findings, "figures": figures})


def test_outcomes():
    f = _finding("m", "a", "b", 4.0, 3.0, 5.0)
    assert outcome(f, 4.5) == "held"
    assert outcome(f, 5.5) == "moved"  # same winner, outside what the run stated
    assert outcome(f, 0.9) == "contradicted"  # the winner flipped
    assert outcome(f, math.nan) == "n/a"
    none = _finding("http_requests_per_msg", "sse", "longpoll", math.inf, "inf", "inf")
    assert outcome(none, math.inf) == "held" and outcome(none, 3.0) == "moved"


def test_pair_ratio_reads_the_same_pair_at_the_same_point():
    run = _run("r", 0.02, 0.08)
    f = _finding("server_cpu_s_per_1k", "websocket", "longpoll", 4.0, 3.0, 5.0)
    assert pair_ratio(run.figures(), f) == pytest.approx(4.0)
    elsewhere = {**f, "point": {**POINT, "clients": 10.0}}
    assert math.isnan(pair_ratio(run.figures(), elsewhere))


def test_held_moved_and_contradicted_across_runs():
    runs = [_run("run-1", 0.020, 0.080), _run("run-2", 0.021, 0.082),
            _run("run-3", 0.020, 0.140), _run("run-4", 0.090, 0.080)]
    judged = {j.run: j for j in judge(runs)}
    first = judged["run-1"]  # 4.0x (3.0-5.3): run-2 3.9 held, run-3 7.0 moved, run-4 0.89 flipped
    assert [c.outcome for c in first.checks] == ["held", "moved", "contradicted"]
    assert not first.held_all and first.count("contradicted") == 1
    flipped = judged["run-4"]  # long polling cheaper there: every other run contradicts it
    assert flipped.count("contradicted") == 3
    result = verdict(list(judged.values()), len(runs))
    assert result["findings"] == 4 and result["held_all"] == 0
    assert result["contradicted_by_2_or_more"] == 1 and not result["ok"]


def test_agreeing_runs_pass_and_ties_are_not_findings():
    tie = _finding("lat_p99_ms", "websocket", "longpoll", 2.4, 0.5, 11.0, kind="tie")
    runs = [_run(f"run-{i}", 0.020 + 0.0005 * i, 0.080, None) for i in range(1, 6)]
    runs[0].record["findings"].append(tie)
    judged = judge(runs)
    assert len(judged) == 5 and all(j.held_all for j in judged)
    assert runs[0].ties == [tie]
    result = verdict(judged, 5)
    assert result["ok"] and result["held_all_share"] == 1.0


def test_coverage_counts_other_runs_figures_inside_each_interval():
    runs = [_run("a", 0.020, 0.080), _run("b", 0.022, 0.120)]
    cover = coverage(runs)["server_cpu_s_per_1k"]
    # a's intervals: ws 0.016-0.025 holds 0.022, lp 0.064-0.1 misses 0.12;
    # b's: ws 0.0176-0.0275 holds 0.020, lp 0.096-0.15 misses 0.08.
    assert (cover["checked"], cover["covered"]) == (4, 2) and cover["rate"] == 0.5


def test_calibration_finds_the_between_run_part_per_transport():
    values = [0.020, 0.022, 0.018, 0.021, 0.019]
    runs = [_run(f"r{i}", v, 0.08) for i, v in enumerate(values)]
    calib = calibration(runs, z=2.5758, level=0.99)["server_cpu_s_per_1k"]
    ws, lp, pooled = calib["websocket"], calib["longpoll"], calib["*"]
    assert ws["figures"] == lp["figures"] == 1 and pooled["figures"] == 2
    assert ws["within_sd"] == pytest.approx(0.05)
    logs = [math.log(v) for v in values]
    spread = math.sqrt(sum((x - sum(logs) / 5) ** 2 for x in logs) / 4)
    assert ws["between_sd"] == pytest.approx(spread)
    assert ws["moments_sd"] == pytest.approx(math.sqrt(spread**2 - 0.05**2))
    assert lp["between_sd"] == 0 and lp["for_level_sd"] == 0  # long polling never moved
    # The sd that makes every pair covered: the widest pair at the widest gap.
    widest = max(abs(a - b) for a in logs for b in logs)
    assert ws["for_level_sd"] == pytest.approx(
        math.sqrt((widest / (2.5758 * math.sqrt(2))) ** 2 - 0.05**2))


def test_ratio_calibration_sees_that_a_rerun_moves_both_transports_together():
    # Every transport 20 % slower or faster from run to run, the ratio steady at 4:
    # each figure moves (calibration), the ratio does not (ratio_calibration).
    scale = [1.0, 1.2, 0.8, 1.1, 0.9]
    runs = [_run(f"r{i}", 0.02 * s, 0.08 * s) for i, s in enumerate(scale)]
    per_transport = calibration(runs, z=2.5758, level=0.99)["server_cpu_s_per_1k"]["websocket"]
    ratio = ratio_calibration(runs, z=2.5758, level=0.99)["server_cpu_s_per_1k"]
    assert per_transport["moments_sd"] > 0.1
    assert ratio["pairs"] == 1 and ratio["between_sd"] == pytest.approx(0.0, abs=1e-9)
    assert ratio["within_sd"] == pytest.approx(math.sqrt(2) * 0.05)  # both figures' own se
    assert ratio["moments_sd"] == 0 and ratio["for_level_sd"] == 0
    # A ratio that does move: its log-sd between runs is found.
    moved = [_run(f"m{i}", 0.02, 0.08 * s) for i, s in enumerate(scale)]
    logs = [math.log(4 * s) for s in scale]
    spread = math.sqrt(sum((x - sum(logs) / 5) ** 2 for x in logs) / 4)
    found = ratio_calibration(moved, z=2.5758, level=0.99)["server_cpu_s_per_1k"]
    assert found["between_sd"] == pytest.approx(spread)
    assert found["suggested_sd"] >= found["moments_sd"] > 0
