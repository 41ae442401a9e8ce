"""Disturbed repeats (compare/disturbed.py): named by the comparison, never judged by it."""

from __future__ import annotations

import json

from duplexbench.commands import compare as compare_command
from duplexbench.compare.disturbed import DISTURBED_FACTOR, disturbed_repeats
from duplexbench.compare.output import summary_line, to_json
from duplexbench.compare.runs import compare_runs, resolve_run

from .synthetic import Model

WHERE = {"transport": "websocket", "point": "1", "side": "baseline", "metric": "lat_p50_ms"}


def test_the_repeat_far_from_its_sides_median_is_named_and_only_it():
    found = disturbed_repeats([0.8, 0.9, 10.9], ["0", "1", "2"], **WHERE)
    assert [(d.repeat, round(d.factor, 1)) for d in found] == [("2", 12.1)]
    assert "baseline repeat 2 lat_p50_ms 10.9, 12.1x" in found[0].describe()
    low = disturbed_repeats([3.0, 2.8, 0.5, 3.1], list("abcd"), **WHERE)
    assert [d.repeat for d in low] == ["c"] and "0.5, 1/5.8 of its side" in low[0].describe()


def test_quiet_spread_two_repeats_and_missing_values_name_nothing():
    # Quiet repeats of one build differ by up to ~2x in latency median on this machine.
    assert disturbed_repeats([0.42, 0.78, 0.43], ["0", "1", "2"], **WHERE) == []
    assert disturbed_repeats([0.4, 12.0], ["0", "1"], **WHERE) == []  # which one is odd?
    assert disturbed_repeats([0.4, float("nan"), 12.0], ["0", "1", "2"], **WHERE) == []
    edge = [1.0, 1.0, DISTURBED_FACTOR]
    assert [d.repeat for d in disturbed_repeats(edge, ["0", "1", "2"], **WHERE)] == ["2"]


def test_a_comparison_names_a_disturbed_repeat_in_notes_summary_and_json(make_run, tmp_path,
                                                                         capsys):
    base = make_run("base", Model(disturb={"websocket": (1, 12.0)}), seed=1)
    current = make_run("current", Model(), seed=2)
    comp = compare_runs(resolve_run(base), resolve_run(current))
    assert [(d.transport, d.side, d.repeat) for d in comp.disturbed] == \
        [("websocket", "baseline", "1")]
    assert any("baseline repeat 1 lat_p50_ms" in note and "rerun" in note for note in comp.notes)
    line = summary_line(comp)
    assert line.startswith("OK: no regression") and "websocket (baseline repeat 1)" in line
    assert to_json(comp)["disturbed"][0]["factor"] > DISTURBED_FACTOR
    # The command's JSON output carries it too.
    out = tmp_path / "compare.json"
    assert compare_command.main([str(base), str(current), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["disturbed"][0]["repeat"] == "1"
    assert "disturbed repeats" in capsys.readouterr().out


def test_quiet_runs_name_no_repeat(make_run):
    comp = compare_runs(resolve_run(make_run("a", Model(), seed=3)),
                        resolve_run(make_run("b", Model(), seed=4)))
    assert comp.disturbed == () and "disturbed" not in summary_line(comp)
