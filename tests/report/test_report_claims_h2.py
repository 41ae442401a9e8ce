"""The connections-per-page claim (report/claims_h2.py): Chromium's count of connections to
the origin, HTTP/1.1 against HTTP/2, on rows made here where the truth is known."""

from __future__ import annotations

import pandas as pd

from _claim_rows import FakeRun, summary_row
from duplexbench.report.claims import VERDICT_RULES, claim_rows
from duplexbench.report.claims_h2 import CONNECTIONS_RULE, connection_rows


def _page(transport: str, http: str, clients: int, held: int | None, **extra) -> dict:
    return summary_row(transport, **{"engine": "browser", "http": http, "clients": clients,
                                     "origin_connections": held, "proxy": "nginx",
                                     "tls": True, "lost": 0, **extra})


def test_six_against_one_is_confirmed_per_transport():
    frame = pd.DataFrame([
        _page("longpoll", "1.1", 8, 6), _page("longpoll", "1.1", 12, 6),
        _page("longpoll", "2", 8, 1), _page("longpoll", "2", 12, 1),
        _page("sse", "1.1", 12, 6, status="ok", lost=500), _page("sse", "2", 12, 1),
    ])
    rows = connection_rows(frame)
    assert [r["verdict"] for r in rows] == ["confirmed", "confirmed"]
    assert "12 long polls" in rows[0]["measurement"] and rows[0]["ratio"] == round(1 / 6, 2)
    assert "HTTP/1.1: 6 connection(s)" in rows[1]["measurement"]


def test_a_second_h2_connection_or_no_limit_is_not_confirmed():
    rows = connection_rows(pd.DataFrame([
        _page("longpoll", "1.1", 12, 6), _page("longpoll", "2", 12, 2),
        _page("sse", "1.1", 12, 12), _page("sse", "2", 12, 1),
    ]))
    assert [r["verdict"] for r in rows] == ["not confirmed", "not confirmed"]


def test_no_row_without_both_versions_a_page_above_the_limit_or_the_count():
    assert connection_rows(pd.DataFrame([_page("sse", "1.1", 12, 6)])) == []
    assert connection_rows(pd.DataFrame([_page("sse", "1.1", 4, 5),
                                         _page("sse", "2", 4, 1)])) == []
    assert connection_rows(pd.DataFrame([_page("sse", "1.1", 12, None),
                                         _page("sse", "2", 12, None)])) == []
    native = summary_row("sse", engine="native", http="2", clients=12, origin_connections=None)
    assert connection_rows(pd.DataFrame([native])) == []


def test_the_claims_table_carries_the_row_and_its_rule():
    run = FakeRun(pd.DataFrame([_page("longpoll", "1.1", 12, 6), _page("longpoll", "2", 12, 1)]))
    rows = [r for r in claim_rows([run]) if r["source"].startswith("RFC 9113")]
    assert len(rows) == 1 and rows[0]["verdict"] == "confirmed"
    assert CONNECTIONS_RULE in VERDICT_RULES
