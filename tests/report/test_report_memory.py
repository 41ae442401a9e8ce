"""Memory per open connection: a slope with its standard error, and no ratio below it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from duplexbench.report import calibration, findings
from duplexbench.report.derived import derive
from duplexbench.report.load import load_run_dir


def _summary(rss_kib_per_conn: dict[str, float], clients=(10, 30, 50), scatter_kib=None):
    """Summary rows whose peak RSS is 40 MiB + slope x connections (+ scatter, in KiB)."""
    rows = []
    for t_index, (transport, slope) in enumerate(rss_kib_per_conn.items()):
        for c_index, count in enumerate(clients):
            extra = 0.0 if scatter_kib is None else scatter_kib[t_index][c_index]
            rows.append({"transport": transport, "clients": count,
                         "server_connections_max": count + 1,
                         "server_rss_mib_max": 40 + ((count + 1) * slope + extra) / 1024,
                         "server_cpu_s": 1.0, "client_cpu_s": 1.0, "delivered": 1000,
                         "bytes_down_per_msg": 100.0, "bytes_up_per_msg": 0.0,
                         "ip_bytes_down_per_msg": np.nan, "ip_bytes_up_per_msg": np.nan,
                         "overhead_down_per_msg": 10.0, "overhead_up_per_msg": 0.0})
    return pd.DataFrame(rows)


def test_exact_lines_have_no_error():
    frame = derive(_summary({"longpoll": 28.0, "websocket": 56.0}))
    by = frame.groupby("transport")
    assert by["server_rss_kib_per_conn"].first().to_dict() == pytest.approx(
        {"longpoll": 28.0, "websocket": 56.0})
    assert by["server_rss_kib_per_conn_se"].first().to_dict() == pytest.approx(
        {"longpoll": 0.0, "websocket": 0.0}, abs=1e-6)


def test_standard_error_pools_the_scatter_of_every_transport():
    scatter = [[300.0, -600.0, 300.0], [-200.0, 400.0, -200.0]]
    frame = derive(_summary({"longpoll": 28.0, "websocket": 56.0}, scatter_kib=scatter))
    x = np.array([11.0, 31.0, 51.0])
    # Both residual patterns are orthogonal to the line (sum 0, symmetric): they stay.
    pooled = math.sqrt((300**2 + 600**2 + 300**2 + 200**2 + 400**2 + 200**2) / 2)
    expected = pooled / math.sqrt(((x - x.mean()) ** 2).sum())
    se = frame.groupby("transport")["server_rss_kib_per_conn_se"].first()
    assert se["longpoll"] == pytest.approx(expected) == se["websocket"]
    assert frame.groupby("transport")["server_rss_kib_per_conn"].first()["websocket"] == \
        pytest.approx(56.0)


def test_two_counts_leave_the_error_unknown():
    frame = derive(_summary({"sse": 20.0, "websocket": 40.0}, clients=(10, 50)))
    assert frame["server_rss_kib_per_conn"].notna().all()
    assert frame["server_rss_kib_per_conn_se"].isna().all()


def _memory(run_dir):
    found = [f for f in findings.run_findings(load_run_dir(run_dir))
             if f.metric == "server_rss_kib_per_conn"]
    assert len(found) == 1, found
    return found[0]


def test_a_ratio_only_when_slopes_clear_their_error(model_run, monkeypatch):
    monkeypatch.setitem(calibration.RERUN_SD, "server_rss_kib_per_conn", {"*": 0.05})
    monkeypatch.setitem(calibration.RATIO_RERUN_SD, "server_rss_kib_per_conn", 0.05)
    clear = _memory(model_run("memory-clear"))  # the fixture's model: 28 vs 56 KiB, exact
    assert clear.kind == "compare" and (clear.best, clear.worst) == ("longpoll", "websocket")
    assert clear.ratio == pytest.approx(2.0, rel=0.01)
    assert clear.lo > 1 and "long polling 28 ± " in clear.text and "WebSocket 56 ± " in clear.text

    run_dir = model_run("memory-noisy")
    summary = pd.read_csv(run_dir / "summary.csv")
    # 8 MiB of RSS scatter: a standard error of ~20 KiB per connection over 10-500 subscribers
    noise = np.random.default_rng(4).normal(0, 8.0, len(summary))
    summary["server_rss_mib_max"] += noise
    summary.to_csv(run_dir / "summary.csv", index=False)
    noisy = _memory(run_dir)
    assert noisy.kind == "tie" and "no ratio" in noisy.text
    assert "×" not in noisy.text.split("no ratio")[1]  # no memory ratio stated below the error
