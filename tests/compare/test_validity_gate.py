"""The gate and point validity: figures that describe the client or a failure are never called
better or worse silently; a point the current build broke is a regression by itself."""

from __future__ import annotations

from duplexbench.compare.model import UNJUDGED
from duplexbench.compare.output import format_markdown, summary_line
from duplexbench.compare.runs import compare_runs, resolve_run

from .synthetic import Model

SATURATED = "loadgen-saturated"


def _rows(comp, transport, metric):
    return [r for r in comp.rows if r.transport == transport and r.metric == metric]


def test_regression_on_a_saturated_load_generator_is_not_called(make_run):
    base = make_run("base", seed=1)
    cur = make_run("cur", Model(delay_ms={"websocket": 2.0}, validity={"websocket": SATURATED}),
                   seed=2)
    comp = compare_runs(resolve_run(base), resolve_run(cur))
    assert not comp.regressions
    row = _rows(comp, "websocket", "lat_p50_ms")[0]
    assert row.status == UNJUDGED and row.why == f"current {SATURATED}"
    assert row.verdict is not None and row.verdict.current > row.verdict.baseline  # values shown
    text = summary_line(comp)
    assert text.startswith("OK") and f"not judged: websocket (current {SATURATED})" in text
    assert f"unjudged: current {SATURATED}" in format_markdown(comp)
    # The other transport is judged as usual.
    assert _rows(comp, "sse", "lat_p50_ms")[0].status == "same"


def test_improvement_on_a_saturated_baseline_is_not_called(make_run):
    base = make_run("base", Model(delay_ms={"sse": 2.0}, validity={"sse": SATURATED}), seed=1)
    comp = compare_runs(resolve_run(base), resolve_run(make_run("cur", seed=2)))
    row = _rows(comp, "sse", "lat_p50_ms")[0]
    assert row.status == UNJUDGED and "baseline" in row.why


def test_invalid_repeats_are_left_out_and_said(make_run):
    # One saturated current repeat (with a slow tail of its own) is dropped; the two others,
    # delayed by 2 ms, still carry the regression.
    cur = make_run("cur", Model(delay_ms={"websocket": 2.0},
                                validity={"websocket": ["ok", SATURATED, "ok"]}), seed=2)
    comp = compare_runs(resolve_run(make_run("base", seed=1)), resolve_run(cur))
    assert any(r.transport == "websocket" and r.metric == "lat_p50_ms" for r in comp.regressions)
    assert any("left out of the judgement: current loadgen-saturated in 1/3" in n
               for n in comp.notes), comp.notes


def test_a_point_broken_in_every_current_repeat_is_a_regression(make_run):
    cur = make_run("cur", Model(validity={"sse": "empty"}), seed=2)
    comp = compare_runs(resolve_run(make_run("base", seed=1)), resolve_run(cur))
    assert [(r.transport, r.metric) for r in comp.regressions] == [("sse", "validity")]
    assert "sse validity" in summary_line(comp)


def test_lost_messages_are_judged_whatever_the_validity(make_run):
    cur = make_run("cur", Model(lost={"sse": 5}, validity={"sse": "lost"}), seed=2)
    comp = compare_runs(resolve_run(make_run("base", seed=1)), resolve_run(cur))
    names = {(r.transport, r.metric) for r in comp.regressions}
    assert ("sse", "lost") in names and ("sse", "validity") in names


def test_tails_carry_their_stability_in_ab_mode(make_run):
    comp = compare_runs(resolve_run(make_run("base", seed=1)), resolve_run(make_run("cur", seed=2)),
                        paired=True)
    assert not comp.regressions
    for metric in ("lat_p90_ms", "lat_p99_ms", "sent_p90_ms", "sent_p99_ms"):
        row = _rows(comp, "sse", metric)[0]
        assert row.note.startswith("tail "), row
        assert row.gated == row.note.startswith("tail gated")
    assert not _rows(comp, "sse", "lat_p999_ms")[0].gated
