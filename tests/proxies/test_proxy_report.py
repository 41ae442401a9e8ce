"""The report's nginx rows and RFC 6202 §3.2 verdict, from synthetic summary rows."""

from __future__ import annotations

import pandas as pd

from duplexbench.report.infra import claim_rows, main_rows, sections


def _row(transport, proxy="none", buffering=None, accel=None, gzip=None, engine="native",
         p99=5.0, lost=0, expected=100, delivered=100):
    return {"transport": transport, "engine": engine, "clients": 4, "proxy": proxy,
            "proxy_buffering": buffering, "proxy_accel_header": accel, "proxy_gzip": gzip,
            "lat_p50_ms": p99 / 2, "lat_p99_ms": p99, "lat_max_ms": p99, "lost": lost,
            "expected": expected, "delivered": delivered, "sent": 25, "proxy_cpu_s": 0.01,
            "proxy_cpu_pct": 1.0, "client_cpu_pct": 5.0, "point": 0, "keepalive": True}


def test_verdict_follows_the_measurement():
    streamed = pd.DataFrame([_row("sse"), _row("sse", "nginx", True, False, p99=6.0)])
    [row] = claim_rows(streamed)
    assert row["source"] == "RFC 6202 §3.2" and row["verdict"] == "not confirmed"
    assert "not compressed" in row["claim"] and row["ratio"] == 1.2
    held = pd.DataFrame([_row("ndjson", engine="browser"),
                         _row("ndjson", "nginx", True, False, True, engine="browser", p99=float("nan"),
                              lost=100, delivered=0)])
    [row] = claim_rows(held)
    assert row["verdict"] == "confirmed" and "gzip-compressed" in row["claim"]
    slow = pd.DataFrame([_row("sse"), _row("sse", "nginx", True, False, p99=900.0)])
    assert claim_rows(slow)[0]["verdict"] == "confirmed"
    # The header sent, or buffering off: not a §3.2 condition, no row.
    assert claim_rows(pd.DataFrame([_row("sse"), _row("sse", "nginx", True, True)])) == []


def test_figures_keep_direct_native_rows():
    frame = pd.DataFrame([_row("sse"), _row("sse", "nginx", False, True),
                          _row("sse", engine="browser")])
    kept = main_rows(frame)
    assert list(kept["proxy"]) == ["none"] and list(kept["engine"]) == ["native"]
    only_nginx = pd.DataFrame([_row("sse", "nginx", False, True)])
    assert len(main_rows(only_nginx)) == 1  # a run without direct rows keeps its own


def test_nginx_section_marks_held_streams():
    class Run:
        summary = pd.DataFrame([_row("sse"), _row("sse", "nginx", True, False, lost=40),
                                _row("sse", "nginx", False, True, p99=6.0)])
        meta: dict = {}
        path = "."

    [section] = sections([Run()])
    assert section.title == "nginx in the path"
    streaming = [r[-1] for r in section.rows]
    assert streaming == ["streamed", "held", "streamed"]
    assert any("through nginx (buffering off)" in p for p in section.paragraphs)
