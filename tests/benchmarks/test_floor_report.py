"""engines --floor's verdict and how often it holds (duplexbench/benchmarks/floor_report.py).

The figures are computed from rows as the command writes them; these check the arithmetic
that turns them into a verdict, its rerun estimate and the tally over invocations.
"""

from __future__ import annotations

import json

import pytest

from duplexbench.benchmarks import floor, floor_report
from duplexbench.benchmarks.floor_report import TARGET, summarize, tally, tally_markdown, verdict


def _rows(ratios: dict[str, list[float]]) -> list[dict]:
    """A floor and a native row per repeat whose client/server ratio is ``ratio`` apart."""
    rows = []
    for transport, values in ratios.items():
        for repeat, ratio in enumerate(values, 1):
            for client, per_server in (("floor", 0.4), ("native", 0.4 * ratio)):
                rows.append({"transport": transport, "client": client, "repeat": repeat,
                             "client_per_server": per_server,
                             "with_publisher_per_server": per_server + 0.2,
                             "client_us_per_delivery": 10 * per_server,
                             "server_cpu_s": 1.0, "publisher_cpu_s": 0.2})
    return rows


def test_the_verdict_counts_repeats_and_estimates_a_rerun():
    summary = summarize(_rows({"sse": [1.1, 1.2, 1.15, 1.25, 1.1],
                               "websocket": [1.2, 1.35, 1.28, 1.4, 1.25]}))
    sse, ws = summary
    assert sse["within_target"] and sse["repeats_within_target"] == 5
    assert sse["rerun_agrees"] == 1.0  # every resample of five values below 1.3 is below
    assert ws["within_target"] and ws["repeats_within_target"] == 3
    assert 0.5 < ws["rerun_agrees"] < 1.0  # two of five above: some resampled medians are
    v = verdict(summary)
    assert v["all_within_target"] is True and v["above"] == []
    assert v["rerun_agrees_estimate"] == pytest.approx(ws["rerun_agrees"], abs=0.03)


def test_a_transport_above_the_target_makes_the_verdict_no():
    summary = summarize(_rows({"longpoll": [1.1, 1.1, 1.1], "ndjson": [1.4, 1.5, 1.45]}))
    v = verdict(summary)
    assert v["all_within_target"] is False and v["above"] == ["ndjson"]
    assert v["rerun_agrees_estimate"] == 1.0
    text = floor_report.markdown(summary, [], "head")
    assert "**no** (ndjson above)" in text and "| 0/3 |" in text


def test_the_tally_counts_invocations_that_met_the_target(tmp_path):
    runs = {"a": {"sse": [1.1, 1.2, 1.1], "ws": [1.2, 1.1, 1.2]},
            "b": {"sse": [1.4, 1.35, 1.2], "ws": [1.2, 1.2, 1.1]},
            "c": {"sse": [1.0, 1.1, 1.1]}}  # not every transport: no overall verdict
    paths = []
    for name, ratios in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "floor.json").write_text(json.dumps({"rows": _rows(ratios)}))
        paths.append(tmp_path / name)
    result = tally(paths)
    assert result["per_transport"] == {"sse": {"within": 2, "of": 3}, "ws": {"within": 2, "of": 2}}
    assert (result["all_within"], result["judged"], result["invocations"]) == (1, 2, 3)
    assert "**1/2**" in tally_markdown(result)


def test_tally_refuses_what_is_not_a_floor_result(tmp_path, capsys):
    (tmp_path / "floor.json").write_text("{}")
    assert floor.main(["--tally", str(tmp_path)]) == 2
    assert "not an engines --floor result" in capsys.readouterr().err


def test_the_target_is_the_issues():
    assert floor.TARGET == TARGET == 1.3
