"""`python -m duplexbench compare` on synthetic run directories: verdicts, output, exit codes."""

from __future__ import annotations

import json
import re

import pytest

from duplexbench.commands import compare as compare_command
from duplexbench.compare.metrics import METRICS

from .synthetic import Model


def _run(capsys, *argv) -> tuple[int, str, str]:
    status = compare_command.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_same_build_exits_zero_and_says_ok(make_run, capsys):
    base, cur = make_run("base", seed=1), make_run("cur", seed=2)
    status, out, _ = _run(capsys, base, cur)
    assert status == 0, out
    assert out.strip().splitlines()[-1].startswith("OK: no regression")
    assert "websocket" in out and "lat_p50_ms" in out and "bytes_down_per_msg" in out


def test_injected_delay_names_latency_metrics_and_transport(make_run, capsys, tmp_path):
    base = make_run("base", seed=1)
    cur = make_run("cur", Model(delay_ms={"websocket": 2.0}), seed=2)
    md, js = tmp_path / "compare.md", tmp_path / "compare.json"
    status, out, _ = _run(capsys, base, cur, "--markdown", md, "--json", js)
    assert status == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith("REGRESSION: websocket lat_p50_ms +")
    assert "(p" in last and "sse" not in last
    row = next(line.split() for line in out.splitlines()
               if line.startswith("websocket") and " lat_p50_ms " in line)
    assert row[-1] == "worse"  # the table names transport and metric on the verdict's line
    text = md.read_text()
    assert "FAIL" in text and "**websocket** `lat_p50_ms`" in text
    data = json.loads(js.read_text())
    assert data["regression"] is True
    assert {(r["transport"], r["metric"]) for r in data["regressions"]} >= {
        ("websocket", "lat_p50_ms"), ("websocket", "sent_p50_ms")}


def test_hundred_byte_pad_names_bytes_metric(make_run, capsys):
    base = make_run("base", seed=1)
    cur = make_run("cur", Model(pad_bytes={"sse": 100, "websocket": 100}), seed=2)
    status, out, _ = _run(capsys, base, cur)
    assert status == 1
    last = out.strip().splitlines()[-1]
    assert "sse bytes_down_per_msg +" in last and "websocket bytes_down_per_msg +" in last
    assert "lat_p50_ms" not in last


def test_long_poll_batching_is_not_a_bytes_regression_but_a_pad_is(make_run, capsys):
    # Same build, but the current run batched less (0.93 -> 1.0 requests per message): every
    # per-message byte figure grows by ~12 B without any response getting heavier.
    base = make_run("base", Model(requests={"sse": 0.93}), seed=1)
    cur = make_run("cur", Model(requests={"sse": 1.0}), seed=2)
    status, out, _ = _run(capsys, base, cur)
    assert status == 0, out
    # ~0.07 more requests per message x ~180 B per request (the baseline's overhead / requests).
    assert re.search(r"note: sse 20c 200/s 64B bytes_down_per_msg: judged net of batching: "
                     r"\+1[0-5]\.\d B", out)
    padded = make_run("pad", Model(requests={"sse": 1.0}, pad_bytes={"sse": 100}), seed=3)
    status, out, _ = _run(capsys, base, padded)
    assert status == 1 and "sse bytes_down_per_msg +" in out.splitlines()[-1]


def test_a_pad_is_caught_when_the_current_run_batched_more(make_run, capsys):
    # Seen in CI: a stall made the padded long-poll run batch 26 % more, and an allowance
    # for |change in requests| hid the 100 B pad; the shift is signed, so it cannot.
    base = make_run("base", Model(requests={"sse": 1.0}), seed=1)
    padded = make_run("pad", Model(requests={"sse": 0.74}, pad_bytes={"sse": 100}), seed=3)
    status, out, _ = _run(capsys, base, padded)
    assert status == 1 and "sse bytes_down_per_msg +" in out.splitlines()[-1], out
    assert re.search(r"bytes_down_per_msg: judged net of batching: -\d+\.\d B", out)
    # The same batching without a pad is no regression (and no improvement either).
    batched = make_run("batched", Model(requests={"sse": 0.74}), seed=4)
    status, out, _ = _run(capsys, base, batched)
    assert status == 0, out
    assert not re.search(r"sse .*bytes_down_per_msg .*(better|worse)", out), out


def test_lost_messages_fail(make_run, capsys):
    status, out, _ = _run(capsys, make_run("b", seed=1), make_run("c", Model(lost={"sse": 5}), 2))
    assert status == 1 and "sse lost" in out.splitlines()[-1]


def test_missing_transport_and_metric_are_reported_not_fatal(make_run, capsys):
    base = make_run("base", Model(transports=("longpoll", "sse", "websocket")), seed=1)
    cur = make_run("cur", Model(drop_columns=("server_rss_mib_max",)), seed=2)
    status, out, _ = _run(capsys, base, cur)
    assert status == 0, out
    assert "longpoll" in out and "only in the baseline run" in out
    rss = [line for line in out.splitlines() if " server_rss_mib_max " in line]
    assert len(rss) == 2 and all(line.endswith("missing") for line in rss)
    assert "note: sse 20c 200/s 64B server_rss_mib_max: no value in current" in out


def test_incomplete_run_is_bad_input(make_run, capsys):
    base, cur = make_run("base", seed=1), make_run("cur", Model(status="incomplete"), seed=2)
    status, _, err = _run(capsys, base, cur)
    assert status == 2 and "incomplete run" in err
    assert _run(capsys, base, cur, "--allow-incomplete")[0] == 0


def test_schema_mismatch_is_bad_input(make_run, capsys):
    base, cur = make_run("base", seed=1), make_run("cur", Model(schema_version=99), seed=2)
    status, _, err = _run(capsys, base, cur)
    assert status == 2 and "schema mismatch" in err


def test_no_common_load_points_is_bad_input(make_run, capsys):
    base, cur = make_run("base", seed=1), make_run("cur", Model(clients=50), seed=2)
    status, _, err = _run(capsys, base, cur)
    assert status == 2 and "no common load points" in err and "20c" in err


def test_missing_directory_and_bad_options_exit_two(make_run, capsys, tmp_path):
    base = make_run("base", seed=1)
    assert _run(capsys, base, tmp_path / "nope")[0] == 2
    assert _run(capsys, base, base, "--alpha", "3")[0] == 2
    assert _run(capsys, "--bogus")[0] == 2


def test_directory_holding_one_run_is_accepted(make_run, capsys, tmp_path):
    make_run("baselines/ci/run-1", seed=1)
    status, _, _ = _run(capsys, tmp_path / "baselines/ci", make_run("cur", seed=2))
    assert status == 0


def test_normalize_forgives_a_uniformly_slower_machine(make_run, capsys):
    # Every latency x3 on a machine whose echo at the scenario's rate is x3 slower: a
    # regression unless normalised. The hot-loop echo (unchanged here) is not what scales.
    base = make_run("base", Model(median_ms=1.0, echo_us=50.0, at_rate_us=240.0), seed=1)
    cur = make_run("cur", Model(median_ms=3.0, echo_us=50.0, at_rate_us=720.0), seed=2)
    assert _run(capsys, base, cur)[0] == 1
    status, out, _ = _run(capsys, base, cur, "--normalize")
    assert status == 0, out
    assert "divided by 3.000" in out and "scenario's rate" in out


def test_normalize_refuses_a_run_with_only_the_hot_loop_figure(make_run, capsys):
    base = make_run("base", Model(at_rate_us=None), seed=1)
    status, out, err = _run(capsys, base, make_run("cur", seed=2), "--normalize")
    assert status == 2
    assert "baseline" in err and "hot-loop" in err and "make baseline" in err


def test_min_change_option_overrides_relative_thresholds(make_run, capsys):
    base = make_run("base", seed=1)
    cur = make_run("cur", Model(pad_bytes={"sse": 100}), seed=2)
    # The pad is +79 % of bytes_down_per_msg but +1250 % of overhead_down_per_msg (8 B).
    last = _run(capsys, base, cur, "--min-change", "200")[1].splitlines()[-1]
    assert "sse overhead_down_per_msg" in last and "bytes_down_per_msg" not in last


@pytest.mark.parametrize("name", ["lat_p50_ms", "bytes_down_per_msg", "lost", "throughput_msgs_s"])
def test_every_metric_has_a_direction_and_a_threshold(name):
    spec = next(m for m in METRICS if m.name == name)
    assert spec.gate
    assert spec.threshold.higher_is_worse is (name != "throughput_msgs_s")


def test_server_shapes_are_points_of_their_own(make_run, capsys):
    """workers / broker are dimensions (compare/metrics.py KEY_COLUMNS): a run of two workers
    behind Redis is not compared with a run of one process, and says so."""
    import pandas as pd

    base, cur = make_run("base", seed=1), make_run("cur", seed=2)
    for path, workers, broker in ((base, 1, "none"), (cur, 2, "redis")):
        summary = pd.read_csv(path / "summary.csv")
        summary["workers"], summary["broker"] = workers, broker
        summary.to_csv(path / "summary.csv", index=False)
    status, _, err = _run(capsys, base, cur)
    assert status == 2 and "no common load points" in err and "workers=2+redis" in err
