"""Findings compare transports only at points whose every row can carry a comparison."""

from __future__ import annotations

import pandas as pd

from duplexbench.measure.validity import comparable
from duplexbench.report import findings
from duplexbench.report.derived import aggregate, combine
from duplexbench.report.load import load_run_dir


def compared_rows_are_comparable(run) -> list[str]:
    """Problems: a comparing finding whose point holds a non-comparable row, unannounced."""
    agg = aggregate(combine([run]))
    result = findings.run_findings(run)
    notices = " ".join(f.text for f in result if f.kind == "not-comparable")
    problems = []
    for f in result:
        if f.kind not in ("compare", "tie") or not f.metric:
            continue
        for transport in (f.best, f.worst):
            rows = agg[agg["transport"] == transport]
            # The sentence names its point; find the rows it could be about.
            bad = rows[~rows["validity"].map(comparable)]
            for _, row in bad.iterrows():
                where = f"at {row['clients']:,.0f} subscribers"
                if where in f.text and where not in notices:
                    problems.append(f"{f.text!r} compares at a {row['validity']} point")
    return problems


def test_saturated_largest_point_is_announced_not_compared(model_run):
    run_dir = model_run("sat", client_cpu_pct={("websocket", 500, 10.0): 97.0})
    run = load_run_dir(run_dir)
    result = findings.run_findings(run)
    notice = [f.text for f in result if f.kind == "not-comparable"]
    assert notice == ["At 500 subscribers the load generator was saturated for WebSocket: "
                      "no server comparison at this point."]
    compared = [f for f in result if f.kind == "compare"]
    assert compared and all("at 500 subscribers" not in f.text or "WebSocket" not in f.text
                            for f in compared)
    assert compared_rows_are_comparable(run) == []


def test_no_comparable_point_says_so(model_run):
    hot = {(t, c, 10.0): 99.0 for t in ("longpoll", "sse", "ndjson", "websocket")
           for c in (10, 100, 500)}
    result = findings.run_findings(load_run_dir(model_run("hot", client_cpu_pct=hot)))
    assert [f.kind for f in result] == ["not-comparable", "not-comparable"]
    assert "no transport comparison in this run" in result[-1].text


def test_spread_over_repeats_is_shown(model_run):
    run_dir = model_run("rep")
    summary = pd.read_csv(run_dir / "summary.csv")
    again = summary.assign(repeat=1, server_cpu_s=summary["server_cpu_s"] * 1.1)
    pd.concat([summary, again]).to_csv(run_dir / "summary.csv", index=False)
    cpu = [f for f in findings.run_findings(load_run_dir(run_dir))
           if f.metric == "server_cpu_s_per_1k"][0]
    # The repeats' own range, then where a rerun with as many repeats would fall.
    assert "; 2 repeats: " in cpu.text and "; a rerun with 2 repeats: " in cpu.text, cpu.text


def test_repeats_that_disagree_are_a_tie(model_run):
    run_dir = model_run("flip", transports=("longpoll", "websocket"))
    summary = pd.read_csv(run_dir / "summary.csv")
    flipped = summary.copy()
    ws, lp = flipped["transport"] == "websocket", flipped["transport"] == "longpoll"
    flipped.loc[ws, "server_cpu_s"] = summary.loc[lp, "server_cpu_s"].to_numpy() * 1.5
    pd.concat([summary, flipped.assign(repeat=1)]).to_csv(run_dir / "summary.csv", index=False)
    cpu = [f for f in findings.run_findings(load_run_dir(run_dir))
           if f.metric == "server_cpu_s_per_1k"][0]
    assert cpu.kind == "tie" and "the repeats disagree" in cpu.text, cpu.text


def test_run_vs_run_skips_a_point_that_cannot_be_compared(model_run):
    a = load_run_dir(model_run("a"), label="A")
    b = load_run_dir(model_run("b", client_cpu_pct={("sse", 500, 10.0): 99.0}), label="B")
    result = {f.best: f for f in findings.compare_runs(a, b)}
    assert result["sse"].kind == "not-comparable"
    assert "run B: loadgen-saturated" in result["sse"].text
    assert result["websocket"].kind == "run-vs-run"


def test_a_bad_repeat_is_left_out_and_named(model_run):
    run_dir = model_run("rep2", transports=("longpoll", "websocket"))
    summary = pd.read_csv(run_dir / "summary.csv")
    again = summary.assign(repeat=1)
    hot = (again["transport"] == "websocket") & (again["clients"] == 500)
    again.loc[hot, "client_cpu_pct"] = 99.0
    again.loc[hot, "server_cpu_s"] = 1000.0  # nonsense that must not reach a finding
    pd.concat([summary, again]).to_csv(run_dir / "summary.csv", index=False)
    result = findings.run_findings(load_run_dir(run_dir))
    notes = [f.text for f in result if f.kind == "note"]
    assert any("WebSocket at 500 subscribers, repeat 2 (loadgen-saturated)" in t for t in notes)
    cpu = [f for f in result if f.metric == "server_cpu_s_per_1k"][0]
    assert cpu.best == "websocket" and "at 500 subscribers" in cpu.text


def test_a_compared_side_near_saturation_is_said(model_run):
    """Server or load generator above 80 % (not 90 %): still compared, but the sentence says so."""
    run_dir = model_run("near", client_cpu_pct={("websocket", 500, 10.0): 85.0})
    summary = pd.read_csv(run_dir / "summary.csv")
    hot = (summary["transport"] == "longpoll") & (summary["clients"] == 500)
    summary.loc[hot, "server_cpu_pct"] = 87.0
    summary.to_csv(run_dir / "summary.csv", index=False)
    result = findings.run_findings(load_run_dir(run_dir))
    cpu = next(f for f in result if f.metric == "server_cpu_s_per_1k")
    assert (cpu.best, cpu.worst, cpu.kind) == ("websocket", "longpoll", "compare")
    assert cpu.text.endswith("(near saturation: WebSocket's load generator at 85 %, > 80 %; "
                             "long polling's server at 87 %, > 80 %).")
    # A sentence comparing neither near-saturated side says nothing of it.
    for f in result:
        if f.kind in ("compare", "tie") and {f.best, f.worst}.isdisjoint({"websocket", "longpoll"}):
            assert "near saturation" not in f.text


def test_no_near_saturation_words_on_a_cool_run(model_run):
    result = findings.run_findings(load_run_dir(model_run("cool")))
    assert not any("near saturation" in f.text for f in result)


def test_a_compared_side_whose_server_saturated_is_said(model_run):
    """A server above 90 % (validity server-saturated) is still compared, but its latency is
    its own queue: every sentence comparing that transport says it was saturated."""
    run_dir = model_run("saturated")
    summary = pd.read_csv(run_dir / "summary.csv")
    hot = (summary["transport"] == "longpoll") & (summary["clients"] == 500)
    summary.loc[hot, "server_cpu_pct"] = 96.0
    summary.loc[hot, "validity"] = "server-saturated"
    summary.to_csv(run_dir / "summary.csv", index=False)
    result = findings.run_findings(load_run_dir(run_dir))
    compared = [f for f in result if f.kind in ("compare", "tie") and "longpoll" in (f.best, f.worst)]
    assert compared
    for f in compared:
        assert "(saturated: long polling's server at 96 %: its figures include its own " \
               "queueing and hold for this load only)" in f.text
    for f in result:
        if f.kind in ("compare", "tie") and "longpoll" not in (f.best, f.worst):
            assert "saturated:" not in f.text
