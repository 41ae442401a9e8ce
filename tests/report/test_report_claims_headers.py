"""One figure, one point, one rule: every "HTTP header per message" reading agrees.

RFC 6202's header row, the article's long-polling row and the findings sentence all read
``http_requests_per_msg`` (report/headers.py). These tests fail as soon as two of them
quote another number, another point or another verdict for the same run.
"""

from __future__ import annotations

import pandas as pd
import pytest
from _claim_rows import FakeRun, summary_row

from duplexbench.report import findings, headers
from duplexbench.report.claims import VERDICT_RULES, claim_rows
from duplexbench.report.content import collect
from duplexbench.report.load import load_run_dir
from duplexbench.report.markdown import render


def _row(transport, **values):
    return summary_row(transport, **{"payload_bytes": 100, "message_bytes": 155,
                                     "rate_msgs_s": 1000, "lat_samples": 5000, "delivered": 5000,
                                     "overhead_down_per_msg": 4.0, **values})


def _run(requests: float, *extra) -> FakeRun:
    rows = [_row("longpoll", http_requests_per_msg=requests, overhead_down_per_msg=200 * requests,
                 overhead_up_per_msg=120 * requests),
            _row("longpoll", keepalive=False, http_requests_per_msg=requests,
                 overhead_down_per_msg=260 * requests, overhead_up_per_msg=180 * requests),
            _row("sse", overhead_down_per_msg=21.0, http_requests_per_msg=0.0004),
            _row("ndjson", overhead_down_per_msg=9.0, http_requests_per_msg=0.0004),
            _row("websocket", overhead_down_per_msg=4.2, http_requests_per_msg=0.0004),
            *extra]
    return FakeRun(pd.DataFrame(rows))


def _one(rows, *words):
    found = [r for r in rows if all(w in r["claim"] for w in words)]
    assert len(found) == 1, (words, [r["claim"] for r in rows])
    return found[0]


@pytest.mark.parametrize("requests", [1.0, 0.733, 0.5, 0.467, 0.1])
def test_rfc6202_and_article_rows_read_one_figure_with_one_rule(requests):
    rows = claim_rows([_run(requests)])
    rfc = _one(rows, "full HTTP request", "keep-alive on")
    article = _one(rows, "Long polling: the server response")
    figure = f"{headers.format_requests(requests)} {headers.NAME}"
    assert figure in rfc["measurement"] and figure in article["measurement"]
    assert rfc["ratio"] == article["ratio"] == round(requests, 2)
    expected = "confirmed" if requests >= headers.PER_MESSAGE_MIN else "not confirmed"
    assert rfc["verdict"] == article["verdict"] == expected
    # Keep-alive off: the same point, the same rule.
    off = _one(rows, "full HTTP request", "keep-alive off")
    assert off["verdict"] == expected and "1000 msg/s, payload 100 B" in off["claim"]
    if requests < 1:  # batching is said, in both rows, the same way
        note = headers.batching_note(requests)
        assert note and note in rfc["measurement"] and note in article["measurement"]


def test_rows_read_the_same_point_when_another_run_has_a_lower_rate():
    """A long-polling-only point at 5 msg/s (another run) no longer pulls RFC 6202's row
    away from the point the article's rows read."""
    low = _row("longpoll", rate_msgs_s=5, clients=4, http_requests_per_msg=1.0,
               overhead_down_per_msg=200.0, overhead_up_per_msg=120.0)
    rows = claim_rows([_run(0.467), FakeRun(pd.DataFrame([low]))])
    rfc = _one(rows, "full HTTP request", "keep-alive on")
    article = _one(rows, "Long polling: the server response")
    assert "1000 msg/s" in rfc["claim"] and "1000 msg/s" in article["claim"]
    assert rfc["ratio"] == article["ratio"] == 0.47
    assert rfc["verdict"] == article["verdict"] == "not confirmed"


def test_streams_and_websocket_are_judged_by_the_same_threshold():
    rows = claim_rows([_run(0.733)])
    assert _one(rows, "SSE: the server response")["verdict"] == "not confirmed"
    assert _one(rows, "WebSocket carries no HTTP header")["verdict"] == "confirmed"


def test_the_rule_is_stated_in_the_report_with_its_threshold(model_run):
    assert any(f"at least {headers.PER_MESSAGE_MIN:g}" in rule for rule in VERDICT_RULES)
    content = collect([load_run_dir(model_run("rules"))])
    text = render(content, {f.name: f"{f.name}.png" for f in content.figures})
    assert "Verdict rules:" in text and headers.RULE in text


def test_findings_quote_the_same_figure_as_the_claims(model_run):
    """One run, one point: the findings sentence and both claim rows print one number."""
    run_dir = model_run("one-point", clients=(20,), transports=("longpoll", "websocket"))
    summary = pd.read_csv(run_dir / "summary.csv")
    summary.loc[summary["transport"] == "longpoll", "http_requests_per_msg"] = 0.733
    summary.to_csv(run_dir / "summary.csv", index=False)
    run = load_run_dir(run_dir)
    sentence = next(f for f in findings.run_findings(run) if f.metric == headers.COLUMN)
    assert sentence.worst == "longpoll"
    rows = claim_rows([run.source if run.source is not None else run])
    article = _one(rows, "Long polling: the server response")
    assert "0.733" in sentence.text and headers.batching_note(0.733) in sentence.text
    assert f"{headers.format_requests(0.733)} {headers.NAME}" in article["measurement"]
    assert headers.batching_note(0.733) in article["measurement"]
    rfc = [r for r in rows if "full HTTP request" in r["claim"]]
    assert all(r["ratio"] == article["ratio"] and r["verdict"] == article["verdict"] for r in rfc)
