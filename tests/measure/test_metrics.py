"""Summary rows from synthetic counters, samples and load series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from duplexbench.measure.metrics import (
    PERCENTILES,
    cpu_us_per_msg,
    latency_stats,
    process_stats,
    row_warnings,
    summarize_point,
)
from duplexbench.measure.results import SUMMARY_COLUMNS
from duplexbench.scenario import LoadPoint, parse_scenario

S = 1_000_000_000  # ns per second
MS = 1_000_000     # ns per millisecond
START = 50 * S     # monotonic clock at measurement start


def scenario(**changes):
    return parse_scenario({"name": "synthetic", "duration_s": 10, **changes})


POINT = LoadPoint(index=3, repeat=1, transport="websocket", clients=10, rate=100.0,
                  payload_bytes=64)


def samples(n: int, latency_ms: float = 2.0, sent_delay_ms: float = 0.5) -> pd.DataFrame:
    """n deliveries spread over the 10 s window, fixed latency."""
    intended = START + np.arange(n) * (10 * S // max(n, 1))
    return pd.DataFrame({
        "subscriber": np.arange(n) % 10, "seq": np.arange(n) // 10 + 1,
        "index": np.arange(n) // 10, "intended_ns": intended,
        "sent_ns": intended + int(sent_delay_ms * MS),
        "recv_ns": intended + int(latency_ms * MS),
    })


def counters(delivered: int = 10_000, **changes) -> dict:
    base = {
        "published": delivered // 10, "expected": delivered, "delivered": delivered,
        "lost": 0, "duplicated": 0, "reordered": 0, "reconnects": 0, "errors": 0,
        "message_bytes": 100, "messages_up_on_sub": 0,
        "measure_start_ns": START, "measure_end_ns": START + 10 * S,
        "clock": "monotonic",
        "wire": {
            "sub": {"bytes_up": 0, "bytes_down": delivered * 102, "http_requests": 0,
                    "connections": 10, "reconnects": 0, "errors": 0},
            "pub": {"bytes_up": (delivered // 10) * 250, "bytes_down": 0,
                    "http_requests": delivered // 10, "connections": 1,
                    "reconnects": 0, "errors": 0},
        },
    }
    base.update(changes)
    return base


def load(server_cpu_per_s: float = 0.4, loadgen_cpu_per_s: float = 0.5,
         sched_factor: float = 1.0) -> pd.DataFrame:
    rows = []
    for process, rate in (("server", server_cpu_per_s), ("loadgen", loadgen_cpu_per_s)):
        for tenth in range(-20, 101):  # 2 s of warm-up, then 10 s of measurement at 10 Hz
            t = tenth / 10
            rows.append({
                "process": process, "t_s": t + 2,
                "cpu_user_s": 5 + rate * 0.75 * t, "cpu_system_s": 1 + rate * 0.25 * t,
                # schedstat: nanoseconds (here sched_factor x the 10 ms ticks it replaces)
                "cpu_sched_s": 6 + rate * sched_factor * t,
                "rss_mib": 40.0 + (tenth == 50) * 10 if process == "server" else 30.0,
                "open_files": 20, "connections": 11 if tenth >= 0 else 3,
                "phase": "measure" if tenth >= 0 else "warmup",
            })
    return pd.DataFrame(rows)


def summarize(scn=None, point=POINT, cnt=None, smp=None, ld=None):
    return summarize_point(
        run_id="run-1", scenario=scn or scenario(), point=point, engine="native",
        counters=cnt or counters(), samples=samples(10_000) if smp is None else smp,
        load=load() if ld is None else ld,
    )


# ---------------------------------------------------------------------------
# latency_stats


def test_percentiles_are_exact_nearest_rank():
    stats = latency_stats(np.arange(1, 1001, dtype=float), "lat")
    assert stats == {
        "lat_p50_ms": 500.0, "lat_p90_ms": 900.0, "lat_p99_ms": 990.0, "lat_p999_ms": 999.0,
        "lat_max_ms": 1000.0, "lat_mean_ms": 500.5, "lat_samples": 1000,
    }
    assert PERCENTILES == (50, 90, 99, 99.9)


def test_percentiles_are_observed_values_and_order_free():
    values = np.array([7.0, 1.0, 3.0, 5.0])
    stats = latency_stats(values, "sent")
    assert stats["sent_p50_ms"] == 3.0  # a sample, not an interpolation (4.0)
    assert stats["sent_p999_ms"] == stats["sent_max_ms"] == 7.0
    assert stats["sent_samples"] == 4


def test_empty_and_nan_values():
    stats = latency_stats(np.array([]), "lat")
    assert stats["lat_samples"] == 0
    assert all(math.isnan(v) for k, v in stats.items() if k != "lat_samples")
    assert latency_stats(np.array([np.nan, 2.0]), "lat")["lat_samples"] == 1


# ---------------------------------------------------------------------------
# summarize_point


def test_row_has_every_summary_column_in_order():
    row, tidy = summarize()
    assert list(row) == list(SUMMARY_COLUMNS)
    assert (row["run_id"], row["scenario"], row["engine"]) == ("run-1", "synthetic", "native")
    assert (row["transport"], row["point"], row["repeat"]) == ("websocket", 3, 1)
    assert (row["clients"], row["rate_msgs_s"], row["payload_bytes"]) == (10, 100.0, 64)
    assert (row["pattern"], row["upstream"], row["keepalive"]) == ("fanout", "post", True)
    assert row["status"] == "ok" and row["warnings"] == ""


def test_delivery_and_latency():
    row, tidy = summarize()
    assert (row["sent"], row["expected"], row["delivered"], row["lost"]) == (1000, 10_000, 10_000, 0)
    assert row["duration_s"] == 10.0 and row["throughput_msgs_s"] == 1000.0
    assert row["lat_p50_ms"] == pytest.approx(2.0) and row["lat_max_ms"] == pytest.approx(2.0)
    assert row["sent_p99_ms"] == pytest.approx(1.5)
    assert row["lat_samples"] == 10_000
    assert list(tidy.columns) == ["point", "repeat", "transport", "subscriber", "seq",
                                  "latency_ms", "latency_sent_ms", "recv_s"]
    assert set(tidy["point"]) == {3} and set(tidy["transport"]) == {"websocket"}
    assert tidy["recv_s"].iloc[0] == pytest.approx(0.002)


def test_samples_outside_the_measurement_window_are_dropped():
    smp = samples(10_000)
    early = smp.head(100).assign(intended_ns=START - S, recv_ns=START - S + 900 * MS)
    row, tidy = summarize(smp=pd.concat([early, smp], ignore_index=True))
    assert row["lat_samples"] == 10_000 and row["lat_max_ms"] == pytest.approx(2.0)


def test_coordinated_omission_latency_counts_from_the_intended_time():
    smp = samples(2000, latency_ms=30.0, sent_delay_ms=25.0)  # the publisher fell behind
    row, _ = summarize(smp=smp, cnt=counters(2000))
    assert row["lat_p50_ms"] == pytest.approx(30.0)
    assert row["sent_p50_ms"] == pytest.approx(5.0)


def test_wire_cost_per_delivered_message():
    row, _ = summarize()
    assert row["message_bytes"] == 100
    assert row["bytes_down_per_msg"] == 102.0 and row["overhead_down_per_msg"] == 2.0
    assert row["bytes_up_per_msg"] == 0.0 and row["overhead_up_per_msg"] == 0.0
    assert row["http_requests_per_msg"] == 0.0
    assert row["pub_bytes_up_per_msg"] == 250.0 and row["pub_http_requests_per_msg"] == 1.0


def test_upstream_over_the_subscriber_connection_is_not_overhead():
    # WebSocket echo: every delivered message also went up the same socket.
    wire = {"sub": {"bytes_up": 1000 * 106, "bytes_down": 1000 * 102, "http_requests": 0}}
    echo = counters(1000, messages_up_on_sub=1000, wire=wire)
    row, _ = summarize(scn=scenario(pattern="echo", upstream="transport"), cnt=echo,
                       smp=samples(1000))
    assert row["bytes_up_per_msg"] == 106.0 and row["overhead_up_per_msg"] == 6.0
    assert math.isnan(row["pub_bytes_up_per_msg"])  # no separate publisher connection
    # Chat: 100 messages went up, each delivered to 10 room members.
    chat = counters(1000, messages_up_on_sub=100, wire=wire)
    row, _ = summarize(scn=scenario(pattern="chat", topics=2, upstream="transport"),
                       cnt=chat, smp=samples(1000))
    assert row["overhead_up_per_msg"] == pytest.approx(106.0 - 10.0)


def test_upstream_overhead_subtracts_the_message_as_sent_up():
    # WebSocket echo publishes {"ts":..,"data":..} (here 70 B), not the 100-byte envelope:
    # 76 B up per message is a 6-byte masked client frame header, not -24 B.
    wire = {"sub": {"bytes_up": 1000 * 76, "bytes_down": 1000 * 102, "http_requests": 0}}
    echo = counters(1000, messages_up_on_sub=1000, message_bytes_up=70.0, wire=wire)
    row, _ = summarize(scn=scenario(pattern="echo", upstream="transport"), cnt=echo,
                       smp=samples(1000))
    assert row["bytes_up_per_msg"] == 76.0 and row["overhead_up_per_msg"] == pytest.approx(6.0)
    assert row["overhead_down_per_msg"] == 2.0  # the envelope still counts going down
    # Chat: 100 frames went up, each delivered to 10 room members.
    wire = {"sub": {"bytes_up": 100 * 76, "bytes_down": 1000 * 102, "http_requests": 0}}
    chat = counters(1000, messages_up_on_sub=100, message_bytes_up=70.0, wire=wire)
    row, _ = summarize(scn=scenario(pattern="chat", topics=2, upstream="transport"),
                       cnt=chat, smp=samples(1000))
    assert row["overhead_up_per_msg"] == pytest.approx(0.6)
    # Nothing went up the subscriber connection: message_bytes_up changes nothing.
    row, _ = summarize(cnt=counters(message_bytes_up=64.0))
    assert row["overhead_up_per_msg"] == 0.0


def test_long_polling_requests_per_message():
    wire = {"sub": {"bytes_up": 500 * 150, "bytes_down": 2000 * 100 + 500 * 200,
                    "http_requests": 500}}
    row, _ = summarize(cnt=counters(2000, wire=wire), smp=samples(2000))
    assert row["http_requests_per_msg"] == 0.25
    assert row["bytes_down_per_msg"] == 150.0 and row["overhead_down_per_msg"] == 50.0
    assert row["bytes_up_per_msg"] == 37.5 and row["overhead_up_per_msg"] == 37.5


def test_cpu_and_memory_over_the_measure_phase_only():
    row, _ = summarize(ld=load(sched_factor=1.01))
    assert row["server_cpu_s"] == pytest.approx(4.04)  # schedstat figure
    assert row["server_cpu_tick_s"] == pytest.approx(4.0)  # the tick cross-check
    assert row["server_cpu_pct"] == pytest.approx(40.4)
    assert row["client_cpu_s"] == pytest.approx(5.05)
    assert row["client_cpu_tick_s"] == pytest.approx(5.0)
    assert row["client_cpu_pct"] == pytest.approx(50.5)
    assert row["server_rss_mib_max"] == 50.0 and row["server_connections_max"] == 11


def test_cpu_per_delivered_message_is_cpu_rate_over_delivery_rate():
    row, _ = summarize(ld=load(sched_factor=1.01))
    # 0.404 s of CPU per second over 1,000 deliveries per second: 404 us per delivery.
    assert row["server_cpu_us_per_msg"] == pytest.approx(404.0)
    assert row["client_cpu_us_per_msg"] == pytest.approx(505.0)
    # The sampled span shorter than the window (the last 0.5 s unsampled): the CPU rate
    # over the sampled span is unchanged, so the figure is not biased by the mismatch.
    short = load(sched_factor=1.01)
    short = short[short["t_s"] <= 11.5]
    row, _ = summarize(ld=short)
    assert row["server_cpu_s"] == pytest.approx(4.04 * 0.95)
    assert row["server_cpu_us_per_msg"] == pytest.approx(404.0)


def test_cpu_per_message_is_empty_without_a_delivery_or_a_cpu_figure():
    assert math.isnan(cpu_us_per_msg(40.0, 0.0)) and math.isnan(cpu_us_per_msg(float("nan"), 10))
    assert math.isnan(cpu_us_per_msg(None, 10)) and cpu_us_per_msg(1.0, 100.0) == pytest.approx(100.0)


def test_process_stats_sums_several_worker_processes():
    one = load(loadgen_cpu_per_s=0.3)
    two = pd.concat([one.assign(pid=1), one.assign(pid=2)], ignore_index=True)
    stats = process_stats(two, "loadgen")
    assert stats["cpu_s"] == pytest.approx(6.0) and stats["cpu_pct"] == pytest.approx(60.0)


def test_missing_load_and_samples_give_nan_not_errors():
    row, tidy = summarize(cnt=counters(0, expected=0, published=0), smp=pd.DataFrame(),
                          ld=pd.DataFrame())
    assert tidy.empty and row["lat_samples"] == 0 and math.isnan(row["lat_p50_ms"])
    assert math.isnan(row["server_cpu_s"]) and math.isnan(row["bytes_down_per_msg"])
    assert list(row) == list(SUMMARY_COLUMNS)


# ---------------------------------------------------------------------------
# Warnings and status


def test_a_clean_point_has_no_warnings():
    row, _ = summarize()
    assert row_warnings(row, scenario()) == []


def test_lost_messages():
    row, _ = summarize(cnt=counters(lost=12, expected=2400, delivered=2388),
                       smp=samples(2388))
    assert row["status"] == "lost"
    assert row["warnings"].startswith("LOST 12 of 2400 messages")
    row, _ = summarize(scn=scenario(expect_loss=True),
                       cnt=counters(lost=12, expected=2400, delivered=2388), smp=samples(2388))
    assert row["status"] == "ok" and "LOST" not in row["warnings"]


def test_saturated_load_generator():
    row, _ = summarize(ld=load(loadgen_cpu_per_s=0.95))
    assert "the load generator used 95% of its core(s): the server was not the bottleneck" \
        in row["warnings"]
    assert "lower the rate or clients" in row["warnings"]  # no hint given: the safe advice
    assert row["validity"] == "loadgen-saturated"
    hinted, _ = summarize_point(
        run_id="run-1", scenario=scenario(), point=POINT, engine="native", counters=counters(),
        samples=samples(10_000), load=load(loadgen_cpu_per_s=0.95),
        loadgen_hint="add load-generator processes (--loadgen-procs 3)")
    assert "--loadgen-procs 3" in hinted["warnings"]
    # Two cores for the generator: 95% of one core is under half of its capacity.
    spread, _ = summarize_point(
        run_id="run-1", scenario=scenario(), point=POINT, engine="native", counters=counters(),
        samples=samples(10_000), load=load(loadgen_cpu_per_s=0.95), loadgen_procs=2,
        loadgen_cores=2)
    assert spread["validity"] == "ok" and "load generator" not in spread["warnings"]
    row, _ = summarize(ld=load(loadgen_cpu_per_s=0.85))
    assert "load generator" not in row["warnings"]


def test_both_processes_saturated_blames_neither_alone():
    row, _ = summarize(ld=load(server_cpu_per_s=0.99, loadgen_cpu_per_s=0.97))
    assert "the load generator used 97% of a core and the server 99%: both were saturated" \
        in row["warnings"]
    assert "the server was not the bottleneck" not in row["warnings"]


def test_too_few_samples_for_a_percentile():
    row, _ = summarize(cnt=counters(600), smp=samples(600))
    assert "p99.9 from 600 samples is the maximum in disguise" in row["warnings"]
    row, _ = summarize(cnt=counters(60), smp=samples(60))
    assert "p99 from 60 samples is the maximum in disguise" in row["warnings"]
    row, _ = summarize(cnt=counters(1000), smp=samples(1000))
    assert "disguise" not in row["warnings"]


def test_reconnects_and_errors():
    row, _ = summarize(cnt=counters(reconnects=3))
    assert row["reconnects"] == 3 and "3 reconnects" in row["warnings"]
    assert row["status"] == "ok"
    row, _ = summarize(cnt=counters(errors=["connection reset", "timeout"]))
    assert row["status"] == "error" and "2 client errors" in row["warnings"]
    assert "; " in summarize(cnt=counters(reconnects=1, errors=1))[0]["warnings"]


def test_row_warnings_on_a_row_read_back_from_csv():
    row, _ = summarize(cnt=counters(60), smp=samples(60))
    read_back = pd.DataFrame([row]).astype(str).iloc[0].to_dict()  # everything as text
    assert row_warnings(read_back, scenario()) == row["warnings"].split("; ")


def test_nearest_rank_edges():
    from duplexbench.measure.metrics import nearest_rank

    values = np.arange(1, 601, dtype=float)
    # p99.9 of 600 samples is the 600th: the maximum in disguise.
    assert list(nearest_rank(values, (50, 99, 99.9))) == [300.0, 594.0, 600.0]
    assert list(nearest_rank(np.array([4.0]), PERCENTILES)) == [4.0] * 4


def test_messages_up_on_sub_may_be_a_flag():
    wire = {"sub": {"bytes_up": 1000 * 106, "bytes_down": 1000 * 102, "http_requests": 0}}
    chat = counters(1000, published=100, messages_up_on_sub=True, wire=wire)
    row, _ = summarize(scn=scenario(pattern="chat", topics=2, upstream="transport"),
                       cnt=chat, smp=samples(1000))
    assert row["overhead_up_per_msg"] == pytest.approx(106.0 - 10.0)
    row, _ = summarize(cnt=counters(1000, messages_up_on_sub=False, wire=wire),
                       smp=samples(1000))
    assert row["overhead_up_per_msg"] == 106.0


def test_row_warnings_without_a_scenario():
    row, _ = summarize(cnt=counters(lost=5, expected=10_000, delivered=9995),
                       smp=samples(9995))
    assert any(text.startswith("LOST 5 of 10000") for text in row_warnings(row))


# ---------------------------------------------------------------------------
# Late against lost, kernel byte counts


def test_late_is_its_own_column_and_not_lost():
    row, _ = summarize(cnt=counters(9_990, expected=10_000, late=10, lost=0), smp=samples(9_990))
    assert row["late"] == 10 and row["lost"] == 0
    assert row["status"] == "ok" and row["validity"] == "late"
    lost, _ = summarize(cnt=counters(9_990, expected=10_000, late=0, lost=10), smp=samples(9_990))
    assert lost["late"] == 0 and lost["validity"] == "lost" and lost["status"] == "lost"


def test_late_is_empty_not_zero_when_the_engine_does_not_report_it():
    row, _ = summarize()
    assert math.isnan(row["late"])
    assert all(math.isnan(row[c]) for c in ("ip_bytes_down_per_msg", "ip_bytes_up_per_msg",
                                             "segments_down_per_msg", "segments_up_per_msg"))


def test_ip_bytes_add_52_bytes_per_segment_pure_acks_included():
    tcp = {"sub": {"bytes_received": 10_000 * 102, "bytes_acked": 0,
                   "segs_in": 10_000, "segs_out": 5_000},  # 5,000 pure ACKs went up
           "pub": {"bytes_received": 0, "bytes_acked": 0, "segs_in": 0, "segs_out": 0}}
    row, _ = summarize(cnt=counters(tcp=tcp))
    assert row["ip_bytes_down_per_msg"] == pytest.approx(102 + 52)
    assert row["ip_bytes_up_per_msg"] == pytest.approx(0.5 * 52)
    assert row["segments_down_per_msg"] == 1 and row["segments_up_per_msg"] == 0.5
    assert row["ip_bytes_down_per_msg"] > row["bytes_down_per_msg"]
    other, _ = summarize(cnt=counters(tcp=tcp, ip_header_bytes=40))  # engine says: no timestamps
    assert other["ip_bytes_down_per_msg"] == pytest.approx(142)


def test_summary_has_the_schema_2_columns():
    row, _ = summarize()
    for column in ("validity", "validity_notes", "late", "ip_bytes_down_per_msg",
                   "ip_bytes_up_per_msg", "segments_down_per_msg", "segments_up_per_msg",
                   "server_rss_mib_max", "server_cpu_tick_s"):
        assert column in row
    assert "server_rss_mb_max" not in row
