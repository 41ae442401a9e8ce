"""Figures: one colour per transport everywhere, nothing drawn for what a run lacks."""

from __future__ import annotations

import pandas as pd
from matplotlib.colors import to_hex

from duplexbench.report import colors, plots
from duplexbench.report.derived import aggregate, combine, reference_point
from duplexbench.report.load import load_run_dir, load_runs


def _agg(*run_dirs):
    runs = load_runs(run_dirs)
    agg = aggregate(combine(runs))
    return runs, agg, reference_point(agg)


def test_palette_is_distinct_and_complete():
    names = ("longpoll", "sse", "ndjson", "websocket")
    assert colors.order_transports(reversed(names)) == list(names)
    assert len({colors.color(n) for n in names}) == 4
    assert len({colors.style(n).marker for n in names}) == 4
    assert colors.color("future-transport") == colors.color("future-transport")  # stable


def test_each_transport_keeps_its_colour_in_line_and_bar_figures(fixture_run):
    _, agg, point = _agg(fixture_run("synthetic-a"))
    figure = plots.server_cpu_per_1k(agg, point)
    lines = figure.axes[0].get_lines()
    assert {ln.get_label(): to_hex(ln.get_color()) for ln in lines} == {
        colors.label(t): colors.color(t).lower() for t in ("longpoll", "sse", "ndjson", "websocket")}
    figure = plots.bytes_per_message(agg, point)
    faces = {to_hex(p.get_facecolor(), keep_alpha=False) for p in figure.axes[0].patches}
    assert {colors.color(t).lower() for t in ("longpoll", "sse", "ndjson", "websocket")} <= faces
    assert figure.axes[0].get_ylabel() == "bytes on the wire per delivered message (B)"


def test_cdf_has_log_axis_and_one_line_per_transport(fixture_run):
    run_dir = fixture_run("synthetic-a")
    samples = pd.read_parquet(run_dir / "samples.parquet")
    figure = plots.latency_cdf(samples)
    ax = figure.axes[0]
    assert ax.get_xscale() == "log" and "ms" in ax.get_xlabel()
    assert len(ax.get_lines()) - 2 == 4  # plus the p50 / p99 guide lines
    assert plots.to_png(figure).startswith(b"\x89PNG")


def test_figures_only_for_what_the_run_has(fixture_run):
    _, agg, point = _agg(fixture_run("synthetic-a"))
    assert plots.delivery(agg) is None  # nothing lost, duplicated or reordered
    assert plots.latency_vs(agg, "rate_msgs_s", point) is None  # rate not swept
    assert plots.latency_vs(agg, "clients", point) is not None
    assert plots.latency_cdf(pd.DataFrame(columns=["transport", "latency_ms"])) is None
    _, inc, inc_point = _agg(fixture_run("synthetic-incomplete"))
    assert plots.delivery(inc) is not None and plots.latency_vs(inc, "rate_msgs_s", inc_point)


def test_side_by_side_bars_carry_run_labels(fixture_run):
    _, agg, point = _agg(fixture_run("synthetic-a"), fixture_run("synthetic-b"))
    figure = plots.bytes_per_message(agg, point)
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks[0] == "long polling\nA | B"


def test_notebook_helpers(fixture_run):
    run = load_run_dir(fixture_run("synthetic-a"))
    samples = run.samples()
    assert plots.latency_over_time(samples).axes[0].get_xlabel().endswith("(s)")
    assert plots.latency_histogram(samples) is not None


def test_points_that_cannot_be_compared_are_ringed(model_run):
    _, agg, point = _agg(model_run("hot", client_cpu_pct={("websocket", 500, 10.0): 97.0}))
    figure = plots.latency_vs(agg, "clients", point)
    labels = [label for ax in figure.axes for label in ax.get_legend_handles_labels()[1]]
    assert labels.count(plots.NOT_COMPARABLE) == len(figure.axes)  # once per panel
    _, clean, point = _agg(model_run("cool"))
    figure = plots.latency_vs(clean, "clients", point)
    assert plots.NOT_COMPARABLE not in [label for ax in figure.axes
                                        for label in ax.get_legend_handles_labels()[1]]
