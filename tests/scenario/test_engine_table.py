"""Engine sweeps in scenarios and the report's browser sections (no browser needed)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from duplexbench.report.infra import sections
from duplexbench.scenario import ScenarioError, load_scenario, parse_scenario


def test_engine_key_forms():
    assert parse_scenario({"name": "a", "engine": "browser"}).engines == ("browser",)
    both = parse_scenario({"name": "a", "transports": ["sse"], "clients": [2],
                           "engine": ["native", "browser"]})
    assert [p.engine for p in both.points()] == ["native", "browser"]
    table = parse_scenario({"name": "a", "engine": {"kind": "browser", "per_page": 8}})
    assert table.engines == ("browser",) and table.engine_options == {"per_page": 8}
    assert parse_scenario(table.to_dict()) == table
    legacy = parse_scenario({"name": "a", "engine": {"workers": 2}})
    assert legacy.engines == () and legacy.engine_options == {"workers": 2}
    with pytest.raises(ScenarioError, match="key 'engine'"):
        parse_scenario({"name": "a", "engine": "firefox"})


@pytest.mark.parametrize("name", ["browser", "browser-limit", "proxy"])
def test_shipped_scenarios_load(name):
    scenario = load_scenario(f"scenarios/{name}.toml")
    assert scenario.points()


def _row(transport, clients, engine, p50, delivered=100, point=0):
    return {"transport": transport, "clients": clients, "engine": engine, "proxy": "none",
            "lat_p50_ms": p50, "lat_p99_ms": p50 * 2, "lat_max_ms": p50 * 3, "lost": 0,
            "expected": delivered, "delivered": delivered, "sent": 50, "client_cpu_pct": 30.0,
            "point": point}


def test_limit_section_reads_the_points_counters(tmp_path):
    (tmp_path / "points" / "001-sse-r0").mkdir(parents=True)
    (tmp_path / "points" / "001-sse-r0" / "counters.json").write_text(json.dumps(
        {"published": 0, "scheduled": 50, "subscribers_never_opened": 2}))

    class Run:
        summary = pd.DataFrame([_row("sse", 4, "browser", 10.0, point=0),
                                _row("sse", 8, "browser", float("nan"), delivered=0, point=1)])
        meta = {"scenario": {"parsed": {"engine": {"kind": ["browser"], "per_page": 8}}}}
        path = tmp_path

    titles = {s.title: s for s in sections([Run()])}
    assert "Browsers as clients" not in titles  # no native rows to set it beside
    limit = titles["The connection limit"]
    assert ("SSE", "8", "n/a", "0 of 50", "2", "0 of 0", "n/a", "n/a") in limit.rows  # no count
    assert any("published 0 of 50" in p for p in limit.paragraphs)


def test_browser_section_sets_browser_beside_native():
    class Run:
        summary = pd.DataFrame([_row("websocket", 4, "native", 1.0),
                                _row("websocket", 4, "browser", 11.0)])
        meta: dict = {}
        path = "."

    [section] = sections([Run()])
    assert section.title == "Browsers as clients"
    assert section.rows[0][6] == "+10.00 ms"


@pytest.mark.parametrize("data, words", [
    ({"engine": {"kind": "browser", "per_page": 0}}, "engine.per_page"),
    ({"engine": {"kind": "browser", "poll_timeout_s": "5"}}, "engine.poll_timeout_s"),
    ({"engine": "browser", "pattern": "echo"}, "pattern 'fanout' on one topic"),
])
def test_bad_browser_options_are_clear_errors(data, words):
    with pytest.raises(ScenarioError, match=words):
        parse_scenario({"name": "a", **data})


def test_too_many_pages_is_refused_before_chromium_starts(tmp_path):
    import subprocess
    import sys

    from clients.spec import LoadSpec

    spec = LoadSpec(transport="sse", sub_url="http://127.0.0.1:9", pub_url="http://127.0.0.1:9",
                    clients=100, rate=1, warmup_s=0, duration_s=1, drain_s=0, topic_prefix="x")
    text = spec.to_json()
    (tmp_path / "spec.json").write_text(text if isinstance(text, str) else text.decode())
    done = subprocess.run([sys.executable, "-m", "duplexbench.engines.browser", str(tmp_path / "spec.json"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "per_page" in done.stderr
