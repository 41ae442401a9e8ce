"""The floor ratios (report/floor.py) and Skvorc et al.'s rows (report/claims_floor.py),
from hand-made rows whose ratios are known: every figure ÷ tcp's at the same point only,
never across points or from a non-comparable row."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from _claim_rows import FakeRun, summary_row

from duplexbench.report.claims import VERDICT_RULES, claim_rows
from duplexbench.report.claims_floor import SKVORC
from duplexbench.report.derived import aggregate, derive
from duplexbench.report.floor import floor_columns, floor_ratios, format_floor


def _row(transport, clients=10, pattern="fanout", **values):
    base = {"pattern": pattern, "clients": clients, "repeat": 0, "point": 0, "validity": "ok",
            "upstream": "transport", "message_bytes": 110, "server_cpu_s": 0.2,
            "client_cpu_s": 0.1, "bytes_down_per_msg": 111.0, "bytes_up_per_msg": 0.0,
            "ip_bytes_down_per_msg": 170.0, "ip_bytes_up_per_msg": 52.0,
            "overhead_down_per_msg": 1.0, "overhead_up_per_msg": 0.0,
            "lat_p50_ms": 1.0, "lat_p99_ms": 4.0, "delivered": 1000,
            "server_connections_max": clients, "server_rss_mib_max": 40.0}
    return summary_row(transport, **{**base, **values})


def _frame(*rows):
    return derive(pd.DataFrame(rows))


def test_ratios_divide_by_tcp_at_the_same_point_only():
    frame = _frame(
        _row("tcp"), _row("websocket", server_cpu_s=0.3, lat_p50_ms=1.2, lat_p99_ms=6.0,
                          ip_bytes_down_per_msg=171.0),
        _row("tcp", clients=50, server_cpu_s=1.0),
        _row("sse", clients=50, server_cpu_s=2.5),
        _row("longpoll", clients=100),  # no tcp row at 100: no ratio
        _row("ndjson", pattern="echo"),  # echo: tcp ran fan-out only here
    )
    ratios = floor_ratios(frame)
    assert ratios.loc[1, "floor_server_cpu_s_per_1k"] == pytest.approx(1.5)
    assert ratios.loc[1, "floor_lat_p50_ms"] == pytest.approx(1.2)
    assert ratios.loc[1, "floor_lat_p99_ms"] == pytest.approx(1.5)
    assert ratios.loc[1, "floor_ip_bytes_per_msg"] == pytest.approx(223 / 222)
    assert ratios.loc[0, "floor_server_cpu_s_per_1k"] == pytest.approx(1.0)  # tcp ÷ itself
    assert ratios.loc[3, "floor_server_cpu_s_per_1k"] == pytest.approx(2.5)  # its own point
    assert math.isnan(ratios.loc[4, "floor_server_cpu_s_per_1k"])
    assert math.isnan(ratios.loc[5, "floor_lat_p50_ms"])
    # Without noise the interval is the ratio; exact byte counts never get one.
    assert ratios.loc[1, "floor_lat_p50_ms_lo"] == ratios.loc[1, "floor_lat_p50_ms_hi"]
    columns = floor_columns(ratios)
    assert list(columns) == ["server CPU ×tcp", "IP bytes ×tcp", "p50 ×tcp", "p99 ×tcp"]
    assert columns["server CPU ×tcp"][1] == "1.50×" and columns["p50 ×tcp"][4] == "n/a"


def test_non_comparable_rows_give_no_ratio_and_noise_widens_the_interval():
    frame = _frame(_row("tcp"), _row("websocket", lat_p50_ms=2.0),
                   _row("tcp", clients=50, validity="lost"), _row("websocket", clients=50))
    noise = pd.DataFrame({"noise_lat_p50_ms": [0.1, 0.2, 0.1, 0.1]}, index=frame.index)
    ratios = floor_ratios(frame, noise)
    assert ratios.loc[1, "floor_lat_p50_ms"] == pytest.approx(2.0)
    assert ratios.loc[1, "floor_lat_p50_ms_lo"] == pytest.approx(2.0 * 0.8 / 1.1)
    assert ratios.loc[1, "floor_lat_p50_ms_hi"] == pytest.approx(2.0 * 1.2 / 0.9)
    assert math.isnan(ratios.loc[3, "floor_lat_p50_ms"])  # its tcp row lost messages
    assert format_floor(2.0, 1.5, 2.5) == "2.00× (1.50–2.50)"
    assert floor_ratios(_frame(_row("sse"))).empty  # no tcp: nothing


def test_aggregate_keeps_a_pattern_sweep_apart():
    frame = _frame(_row("tcp"), _row("tcp", pattern="echo", lat_p50_ms=9.0))
    agg = aggregate(frame.assign(run="r", warnings="", keepalive=True))
    assert list(agg["lat_p50_ms"]) == [1.0]  # the first pattern, not a median with echo


def _skvorc(rows):
    return [r for r in rows if r["source"] == SKVORC]


def test_skvorc_rows_and_verdicts():
    rows = [
        _row("tcp", clients=10), _row("websocket", clients=10, lat_p50_ms=1.9),
        _row("tcp", clients=50), _row("websocket", clients=50, bytes_down_per_msg=112.0,
                                      ip_bytes_down_per_msg=171.0, lat_p50_ms=1.1, lat_p99_ms=4.4),
        _row("tcp", pattern="echo", lat_p50_ms=2.0, lat_p99_ms=5.0),
        _row("websocket", pattern="echo", lat_p50_ms=1.0, lat_p99_ms=5.5),
    ]
    found = _skvorc(claim_rows([FakeRun(pd.DataFrame(rows))]))
    by_claim = {(r["claim"].split(":")[-1].strip()): r for r in found}
    assert len(found) == 6, [r["claim"] for r in found]
    ip = next(r for r in found if "IP bytes" in r["claim"])
    assert ip["verdict"] == "confirmed" and ip["ratio"] == pytest.approx(223 / 222, abs=0.01)
    assert "at 50 subscribers" in ip["measurement"]  # the largest comparable point
    payload = next(r for r in found if "TCP payload" in r["claim"])
    assert payload["verdict"] == "confirmed" and "<= 112.0 B" in payload["prediction"]
    p50 = next(r for r in found if r["claim"].endswith("fan-out delivery p50"))
    assert p50["ratio"] == pytest.approx(1.1) and p50["verdict"] == "confirmed"
    assert "1.10–1.90×" in p50["measurement"]  # the range over both points
    echo50 = next(r for r in found if "echo round trip" in r["claim"] and r["claim"].endswith("p50"))
    assert echo50["ratio"] == pytest.approx(0.5) and echo50["verdict"] == "not confirmed"
    echo99 = next(r for r in found if "echo round trip" in r["claim"] and r["claim"].endswith("p99"))
    assert echo99["verdict"] == "confirmed"
    assert by_claim and any("Skvorc" in rule for rule in VERDICT_RULES)


def test_a_ratio_interval_too_wide_to_place_is_not_judged(monkeypatch):
    """A p99 whose own noise reaches 100 % (a few correlated samples) gives an interval that
    meets any band: that row carries no verdict, and says why."""
    from duplexbench.report import claims_floor

    monkeypatch.setattr(claims_floor, "_noise",
                        lambda row, runs, p: 1.2 if row["transport"] == "tcp" and p == 99 else 0.05)
    rows = [_row("tcp", clients=50), _row("websocket", clients=50, lat_p50_ms=1.1, lat_p99_ms=4.4)]
    found = {r["claim"][-3:]: r for r in _skvorc(claim_rows([FakeRun(pd.DataFrame(rows))]))}
    assert found["p99"]["verdict"] == "not judged" and "unbounded" in found["p99"]["measurement"]
    assert "cannot place the ratio" in found["p99"]["measurement"]
    assert found["p50"]["verdict"] == "confirmed"


def test_no_skvorc_rows_without_both_transports():
    rows = [_row("websocket"), _row("sse")]
    assert _skvorc(claim_rows([FakeRun(pd.DataFrame(rows))])) == []


def test_a_run_with_tcp_gets_the_columns_and_the_figure(model_run):
    import make_fixture

    from duplexbench.report import build_report

    models = {**make_fixture.MODELS,
              "tcp": make_fixture.TransportModel(0.6, 0.003, 6.0, 15.0, 30.0, 1.0, 0.0, 0.0)}
    run_dir = model_run("with-tcp", transports=(*make_fixture.MODELS, "tcp"), models=models,
                        clients=(10, 100))
    paths = build_report([run_dir])
    md = paths.markdown.read_text()
    assert "floor_ratios" in {p.stem for p in paths.figures}
    header = next(line for line in md.splitlines() if line.startswith("| transport"))
    for column in ("server CPU ×tcp", "IP bytes ×tcp", "p50 ×tcp", "p99 ×tcp"):
        if column == "IP bytes ×tcp" and "IP bytes / msg" not in header:
            continue  # the fixture records no kernel byte counts
        assert column in header
    tcp_row = next(line for line in md.splitlines() if line.startswith("| plain TCP"))
    assert "1.00×" in tcp_row  # tcp ÷ itself
