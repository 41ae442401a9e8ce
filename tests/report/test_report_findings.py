"""Findings are computed from the numbers: the right transport, the right ratio, honest ties."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from make_fixture import MODELS

from duplexbench.report import findings
from duplexbench.report.findings import format_ratio
from duplexbench.report.load import load_run_dir, load_runs


def _finding(run_dir, metric):
    matches = [f for f in findings.run_findings(load_run_dir(run_dir)) if f.metric == metric]
    assert len(matches) == 1, matches
    return matches[0]


def _expected_cpu(run_dir, clients):
    """Expected ratio straight from summary.csv, independent of the report's code."""
    summary = pd.read_csv(run_dir / "summary.csv")
    rows = summary[summary["clients"] == clients]
    per_msg = (rows["server_cpu_s"] / rows["delivered"]).groupby(rows["transport"]).median()
    return per_msg.idxmin(), per_msg.idxmax(), per_msg.max() / per_msg.min()


def test_cheapest_transport_named_with_ratio_from_fixture(fixture_run):
    run_dir = fixture_run("synthetic-a")
    best, worst, ratio = _expected_cpu(run_dir, 500)
    assert (best, worst) == ("websocket", "longpoll")  # what the fixture was built to show
    f = _finding(run_dir, "server_cpu_s_per_1k")
    assert (f.best, f.worst) == (best, worst)
    assert math.isclose(f.ratio, ratio, rel_tol=1e-9)
    assert f.text.startswith(
        f"WebSocket used {format_ratio(ratio)} less server CPU per delivered message than "
        "long polling at 500 subscribers (")


def test_a_clearly_cheaper_transport_is_named(model_run):
    # SSE made ten times cheaper than anything else: the sentence must name SSE.
    models = {**MODELS, "sse": replace(MODELS["sse"], server_cpu_us_per_msg=0.9)}
    run_dir = model_run("cheap-sse", models=models)
    best, worst, ratio = _expected_cpu(run_dir, 500)
    f = _finding(run_dir, "server_cpu_s_per_1k")
    assert f.best == best == "sse" and f.worst == worst == "longpoll"
    assert f"SSE used {format_ratio(ratio)} less server CPU" in f.text
    assert ratio > 10


def test_tie_says_no_clear_difference(model_run):
    same = {t: replace(m, server_cpu_us_per_msg=20.0) for t, m in MODELS.items()}
    run_dir = model_run("tie", models=same)
    f = _finding(run_dir, "server_cpu_s_per_1k")
    assert f.kind == "tie" and f.ratio <= 1.05
    assert "within 5%" in f.text and "no clear difference" in f.text
    assert "less server CPU" not in f.text


def test_nan_values_are_left_out_and_said(model_run):
    run_dir = model_run("nan")
    summary = pd.read_csv(run_dir / "summary.csv")
    summary.loc[summary["transport"] == "longpoll", "server_cpu_s"] = float("nan")
    summary.to_csv(run_dir / "summary.csv", index=False)
    f = _finding(run_dir, "server_cpu_s_per_1k")
    assert "long polling" in f.text.split("(no ")[-1]  # named as missing, not compared
    assert f.worst != "longpoll" and f.best == "websocket"
    assert not math.isnan(f.ratio)


def test_zero_cost_is_said_without_a_ratio(fixture_run):
    f = _finding(fixture_run("synthetic-a"), "http_requests_per_msg")
    assert f.best == "websocket" and math.isinf(f.ratio)
    assert "WebSocket made no HTTP requests per delivered message" in f.text
    assert "inf" not in f.text


def test_one_transport_run(model_run):
    run_dir = model_run("solo", transports=("websocket",))
    result = findings.run_findings(load_run_dir(run_dir))
    assert [f.kind for f in result] == ["single"]
    assert result[0].text.startswith("Only WebSocket was measured")


def test_incomplete_run_names_missing_transports_and_warns_loudly(fixture_run):
    run = load_run_dir(fixture_run("synthetic-incomplete"))
    texts = [f.text for f in findings.run_findings(run)]
    assert texts[0].startswith("No results for SSE, NDJSON streaming")
    # Compared at the largest point both transports reached (WebSocket stopped at 50 msg/s).
    assert all("at 20 subscribers, 50 messages/s" in t.lower() for t in texts[1:])
    loud = [w.text for w in findings.run_warnings(run) if w.loud]
    assert any(t.startswith("Run status is 'incomplete'") for t in loud)
    assert any(t.startswith("LOST MESSAGES: long polling") and "lost 37 of 12,000" in t for t in loud)
    assert any(t.startswith("SATURATED LOAD GENERATOR: long polling") for t in loud)


def test_noisy_repeats_are_flagged(model_run):
    run_dir = model_run("noisy", transports=("websocket",), clients=(10,))
    summary = pd.read_csv(run_dir / "summary.csv")
    again = summary.assign(repeat=1, lat_p50_ms=summary["lat_p50_ms"] * 1.6)
    pd.concat([summary, again]).to_csv(run_dir / "summary.csv", index=False)
    loud = [w.text for w in findings.run_warnings(load_run_dir(run_dir)) if w.loud]
    assert any(t.startswith("NOISY: WebSocket at 10 subscribers") for t in loud)


def test_run_b_vs_run_a(fixture_run):
    a_dir, b_dir = fixture_run("synthetic-a"), fixture_run("synthetic-b")
    a, b = load_runs([a_dir, b_dir])
    result = {f.best: f.text for f in findings.compare_runs(a, b)}
    sa, sb = (pd.read_csv(d / "summary.csv").query("transport == 'websocket' and clients == 500")
              for d in (a_dir, b_dir))
    ratio = (sa.server_cpu_s / sa.delivered).item() / (sb.server_cpu_s / sb.delivered).item()
    text = result["websocket"]
    assert text.startswith("Run B vs run A, WebSocket at 500 subscribers:")
    assert f"server CPU per delivered message {format_ratio(ratio)} lower" in text
    # Bytes per message did not change between the runs: a tie, said as such.
    assert "bytes on the wire per delivered message within 5% (no clear difference)" in text


def test_row_warnings_from_metrics_are_shown_once(model_run):
    run_dir = model_run("row-warnings", transports=("longpoll",), clients=(10,))
    summary = pd.read_csv(run_dir / "summary.csv")
    summary["lost"], summary["status"] = 3, "lost"
    summary["warnings"] = ("LOST 3 of 300 messages (1.00%): the scenario expects none; check "
                           "reconnects; p99.9 from 297 samples is the maximum in disguise (p99.9 "
                           "needs >= 1000): run longer")
    summary.to_csv(run_dir / "summary.csv", index=False)
    warnings = findings.run_warnings(load_run_dir(run_dir))
    texts = [w.text for w in warnings]
    assert [w.loud for w in warnings if "LOST" in w.text] == [True]  # not repeated by the report
    assert texts[0].startswith("long polling at 10 subscribers, 10 messages/s: LOST 3 of 300")
    assert sum("samples" in t for t in texts) == 1  # summarised, not one line per point


def test_http2_rows_of_a_point_are_not_pooled_as_repeats(model_run):
    # Seen on browser-limit: a median long-poll latency of 2.6 s from 5.1 s over HTTP/1.1
    # and 59 ms over HTTP/2 at one point, called "a tie within the noise of 2 repeats".
    run_dir = model_run("h1-h2")
    best, worst, ratio = _expected_cpu(run_dir, 500)
    summary = pd.read_csv(run_dir / "summary.csv")
    summary["http"] = "1.1"
    h2 = summary.copy()
    h2["http"] = "2"
    h2.loc[h2["transport"] == worst, "server_cpu_s"] /= 1000  # would flip the winner if pooled
    pd.concat([summary, h2]).to_csv(run_dir / "summary.csv", index=False)
    all_findings = findings.run_findings(load_run_dir(run_dir))
    f = [f for f in all_findings if f.metric == "server_cpu_s_per_1k"]
    assert len(f) == 1 and (f[0].best, f[0].worst) == (best, worst)
    assert math.isclose(f[0].ratio, ratio, rel_tol=1e-9)
    assert any(n.kind == "note" and "HTTP/2 rows" in n.text for n in all_findings)
