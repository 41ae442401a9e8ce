"""claim_rows on a hand-made summary: the right rows, ratios and verdicts, nothing invented."""

from __future__ import annotations

import pandas as pd
import pytest
from _claim_rows import FakeRun, summary_row

from duplexbench.report.claims import claim_rows, gap_model_transits

KEYS = {"source", "claim", "prediction", "measurement", "ratio", "verdict"}


def _row(transport, **values):
    return summary_row(transport, **values)


def _rfc6202_run():
    low_rate = {"clients": 4, "delivered": 400}  # 100 messages per connection
    rows = [
        _row("longpoll", **low_rate, delay_ms=25, lat_max_ms=75.6, lat_mean_ms=27.0, lat_samples=400,
             overhead_down_per_msg=180.0, overhead_up_per_msg=120.0, http_requests_per_msg=1.0),
        _row("sse", **low_rate, delay_ms=25, lat_max_ms=27.5, lat_mean_ms=26.0),
        _row("websocket", **low_rate, delay_ms=25, lat_max_ms=60.0, lat_mean_ms=26.0),  # a bad max
        _row("longpoll", delay_ms=0, lat_max_ms=3.0, lat_mean_ms=2.0),  # no transit row at delay 0
    ]
    return FakeRun(pd.DataFrame(rows))


def _overhead_run():
    rows = []
    for payload, envelope, down in ((16, 70, 2.1), (1000, 1055, 4.0), (70000, 70056, 10.3)):
        rows.append(_row("websocket", payload_bytes=payload, message_bytes=envelope,
                         rate_msgs_s=400, overhead_down_per_msg=down))
        rows.append(_row("websocket", payload_bytes=payload, message_bytes=envelope,
                         rate_msgs_s=10, delivered=60, overhead_down_per_msg=down + 9))  # handshake share
    for rate, overhead, requests in ((10, 300.0, 1.0), (400, 40.0, 0.1)):
        rows.append(_row("longpoll", payload_bytes=100, rate_msgs_s=rate, overhead_down_per_msg=overhead * 0.6,
                         overhead_up_per_msg=overhead * 0.4, http_requests_per_msg=requests))
    rows.append(_row("websocket", payload_bytes=100, message_bytes=155, rate_msgs_s=10,
                     delivered=60, overhead_down_per_msg=4.2))
    rows.append(_row("sse", payload_bytes=100, rate_msgs_s=10, overhead_down_per_msg=21.0,
                     http_requests_per_msg=0.01))
    return FakeRun(pd.DataFrame(rows))


def _find(rows, *words):
    found = [r for r in rows if all(w in r["claim"] for w in words)]
    assert len(found) == 1, (words, [r["claim"] for r in rows])
    return found[0]


def test_transit_rows_and_ratios():
    rows = claim_rows([_rfc6202_run()])
    assert all(set(r) == KEYS for r in rows)
    lp_max = _find(rows, "Long polling", "25 ms", "3 transits")
    assert lp_max["ratio"] == pytest.approx(75.6 / 75, abs=0.01) and lp_max["verdict"] == "confirmed"
    assert lp_max["source"] == "RFC 6202 §2.2"
    lp_mean = _find(rows, "Long polling", "25 ms", "mean")
    # Net of the 2 ms measured at delay 0: (27 - 2) / 25.
    assert lp_mean["ratio"] == pytest.approx(1.0, abs=0.01) and lp_mean["verdict"] == "confirmed"
    assert "net of the 2.0 ms" in lp_mean["measurement"]
    sse = _find(rows, "SSE", "25 ms")
    assert sse["ratio"] == pytest.approx(1.1) and sse["verdict"] == "confirmed"
    ws = _find(rows, "WebSocket", "25 ms")
    assert ws["ratio"] == pytest.approx(2.4) and ws["verdict"] == "not confirmed"
    assert not any("0 ms" in r["claim"] for r in rows)  # delay 0 predicts nothing
    assert not any("batches" in r["claim"] for r in rows)  # one rate only: no batching row
    assert not any("Chunked NDJSON" in r["claim"] for r in rows)  # no NDJSON point: no row


def test_overhead_rows():
    rows = claim_rows([_overhead_run()])
    frames = [r for r in rows if r["source"] == "RFC 6455 §5.2"]
    assert [r["prediction"] for r in frames] == ["2 B per message", "4 B per message", "4 B per message",
                                                 "10 B per message"]
    # The smallest overhead per payload is used: the 400 msg/s rows here.
    big = _find(rows, "70056-byte")
    assert big["ratio"] == pytest.approx(1.03) and big["verdict"] == "confirmed"
    batching = _find(rows, "batches")
    assert batching["ratio"] == pytest.approx(40 / 300, abs=0.01) and batching["verdict"] == "confirmed"
    header = _find(rows, "full HTTP request", "keep-alive on")
    # Judged by HTTP requests per delivered message (report/headers.py), as the article's row.
    assert header["ratio"] == 1.0 and header["verdict"] == "confirmed"
    assert "300 B overhead per message" in header["measurement"]
    assert "871 B is shown, not judged" in header["measurement"]
    article_lp = _find(rows, "Long polling: the server response")
    assert article_lp["verdict"] == "confirmed" and article_lp["ratio"] == pytest.approx(1.0)
    article_sse = _find(rows, "SSE: the server response")
    assert article_sse["verdict"] == "not confirmed"  # one header per stream, not per message
    article_ws = _find(rows, "WebSocket carries no HTTP header")
    assert article_ws["verdict"] == "confirmed" and article_ws["ratio"] is None


def test_no_runs_no_rows():
    assert claim_rows([]) == []
    assert claim_rows([FakeRun(pd.DataFrame())]) == []


def test_gap_model():
    assert gap_model_transits(0.0, 25) == pytest.approx(1.0)
    assert gap_model_transits(5, 25) == pytest.approx(1.243, abs=0.002)
    assert gap_model_transits(5, 50) == pytest.approx(1.452, abs=0.002)


def test_frame_rows_skip_envelopes_that_straddle_a_boundary():
    run = FakeRun(pd.DataFrame([_row("websocket", message_bytes=125.9, overhead_down_per_msg=3.9)]))
    assert not [r for r in claim_rows([run]) if r["source"].startswith("RFC 6455")]


def test_frame_rows_use_the_least_biased_point():
    rows = [_row("websocket", payload_bytes=65536, message_bytes=65600, rate_msgs_s=rate,
                 overhead_down_per_msg=down) for rate, down in ((10, 10.0), (1000, 162.2))]
    (row,) = [r for r in claim_rows([FakeRun(pd.DataFrame(rows))]) if r["source"].startswith("RFC 6455")]
    assert row["verdict"] == "confirmed" and row["ratio"] == 1.0 and "at 10 msg/s" in row["measurement"]


def _upstream_run():
    """WebSocket echo / chat publishing over the socket: masked client frames going up."""
    rows = []
    # payload, publish-frame size (payload + {"ts":NS,"data":""}), header per frame.
    for payload, up_frame, header in ((16, 53, 6.0), (1000, 1037, 8.1), (70000, 70037, 14.2)):
        rows.append(_row("websocket", pattern="echo", upstream="transport", payload_bytes=payload,
                         message_bytes=up_frame + 30, sent=400, delivered=400, rate_msgs_s=400,
                         bytes_up_per_msg=up_frame + header, overhead_up_per_msg=header))
        rows.append(_row("websocket", pattern="echo", upstream="transport", payload_bytes=payload,
                         message_bytes=up_frame + 30, sent=10, delivered=10, rate_msgs_s=10,
                         bytes_up_per_msg=up_frame + header + 9,
                         overhead_up_per_msg=header + 9))  # a pong's share
    # Chat, 4 per room: a frame's bytes are shared by the 4 deliveries of its message.
    rows.append(_row("websocket", pattern="chat", upstream="transport", payload_bytes=64,
                     message_bytes=131, sent=100, delivered=400, rate_msgs_s=100,
                     bytes_up_per_msg=(101 + 6.0) / 4, overhead_up_per_msg=6.0 / 4))
    # Fan-out publishes on publish-only sockets and POST points send nothing up: no rows.
    rows.append(_row("websocket", pattern="fanout", upstream="transport", payload_bytes=32,
                     sent=100, delivered=400, bytes_up_per_msg=0.1, overhead_up_per_msg=0.1))
    rows.append(_row("websocket", pattern="echo", upstream="post", payload_bytes=48,
                     sent=100, delivered=100, bytes_up_per_msg=0.0, overhead_up_per_msg=0.0))
    return FakeRun(pd.DataFrame(rows))


def test_client_frame_rows():
    rows = [r for r in claim_rows([_upstream_run()]) if "Client→server" in r["claim"]]
    assert all(r["source"] == "RFC 6455 §5.2" for r in rows)
    assert [r["prediction"] for r in rows] == ["6 B per message sent up", "6 B per message sent up",
                                               "8 B per message sent up", "14 B per message sent up"]
    small = _find(rows, "53-byte", "echo")
    # The smallest header per payload: the 400 msg/s point, not the one with a pong.
    assert small["ratio"] == 1.0 and small["verdict"] == "confirmed" and "at 400 msg/s" in small["measurement"]
    chat = _find(rows, "101-byte", "chat")  # 6 / 4 per delivery x 4 deliveries per frame
    assert chat["ratio"] == 1.0 and chat["verdict"] == "confirmed"
    assert _find(rows, "1037-byte")["verdict"] == "confirmed"
    assert _find(rows, "70037-byte")["ratio"] == pytest.approx(1.01)
    # Fan-out and POST points: nothing went up as client frames, so no row.
    assert len(rows) == 4


def test_client_frame_rows_fail_when_the_envelope_is_subtracted():
    """Subtracting the envelope (seq, topic: 30 B more) instead of the publish frame
    leaves a negative 'header': not confirmed."""
    run = FakeRun(pd.DataFrame([_row("websocket", pattern="echo", upstream="transport",
                                     payload_bytes=16, sent=400, delivered=400,
                                     bytes_up_per_msg=59.0, overhead_up_per_msg=59.0 - 83)]))
    (row,) = [r for r in claim_rows([run]) if "Client→server" in r["claim"]]
    assert row["verdict"] == "not confirmed" and row["prediction"] == "6 B per message sent up"
