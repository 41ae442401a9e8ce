"""The browser engine: headless Chromium (Debian's) subscribing with its own WebSocket,
writing the native engine's files. Skips, saying why, without Chromium or Playwright."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pandas as pd
import pytest

from clients.spec import LoadSpec
from duplexbench.engines.browser.engine import page_layout
from tests._timeouts import scaled
from _parts import needs

try:
    import playwright  # noqa: F401
    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False

no_chromium = needs("chromium")
no_playwright = pytest.mark.skipif(not HAVE_PLAYWRIGHT,
                                   reason="playwright is not installed (pip install -e .)")


def test_page_layout_puts_the_publisher_on_the_first_page():
    assert page_layout(3, 1) == [([0], True), ([1], False), ([2], False)]
    assert page_layout(8, 8) == [(list(range(8)), True)]
    assert page_layout(5, 2) == [([0, 1], True), ([2, 3], False), ([4], False)]


def test_server_serves_the_pages(server):
    with urllib.request.urlopen(server.url + "/pages/bench.js", timeout=scaled(5)) as response:
        assert response.status == 200
        assert "javascript" in response.headers["Content-Type"]
        assert b"window.duplexbench" in response.read()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.url + "/pages/..%2Fapp.py", timeout=scaled(5))
    assert info.value.code == 404


@pytest.mark.browser
@no_chromium
@no_playwright
def test_browser_engine_on_websocket(server, tmp_path):
    spec = LoadSpec(transport="websocket", sub_url=server.url, pub_url=server.url, clients=2,
                    rate=25, payload_bytes=48, warmup_s=0.5, duration_s=1.5, drain_s=1.0,
                    topic_prefix="browser-test")
    spec_path = tmp_path / "spec.json"
    text = spec.to_json()
    spec_path.write_text(text if isinstance(text, str) else text.decode())
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "duplexbench.engines.browser", str(spec_path), str(out)],
                          capture_output=True, text=True, timeout=scaled(90))
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "ready" and kinds[-1] == "done"
    assert [e["phase"] for e in events if e["event"] == "phase"] == ["warmup", "measure", "drain"]
    counters = json.loads((out / "counters.json").read_text())
    assert counters["engine"] == "browser" and "performance.timeOrigin" in counters["clock"]
    assert counters["published"] == 37 and counters["expected"] == 2 * 37
    assert counters["delivered"] == counters["expected"] and counters["lost"] == 0
    samples = pd.read_parquet(out / "samples.parquet")
    assert list(samples.columns) == ["subscriber", "seq", "index", "intended_ns", "sent_ns", "recv_ns"]
    assert len(samples) == counters["delivered"] and set(samples["subscriber"]) == {0, 1}
    latency_ms = (samples["recv_ns"] - samples["intended_ns"]) / 1e6
    assert (latency_ms > 0).all() and (latency_ms < scaled(1000)).all()
    # ts > 2^53 read from its digits: a float would leave every value a multiple of 256.
    assert (samples["sent_ns"] > 2**53).all() and (samples["sent_ns"] % 256 != 0).any()


@pytest.mark.browser
@no_chromium
@no_playwright
def test_one_page_beyond_chromiums_connection_limit(server, tmp_path):
    """Seven EventSources on one page: six connections per origin, so one never opens and
    the page's own publishes (fetch) never leave the browser."""
    spec = LoadSpec(transport="sse", sub_url=server.url, pub_url=server.url, clients=7,
                    rate=10, payload_bytes=32, warmup_s=0.0, duration_s=1.0, drain_s=0.5,
                    topic_prefix="browser-limit-test")
    spec_path = tmp_path / "spec.json"
    text = spec.to_json()
    spec_path.write_text(text if isinstance(text, str) else text.decode())
    out = tmp_path / "out"
    env = {**os.environ, "DUPLEXBENCH_BROWSER_OPEN_TIMEOUT_S": str(scaled(3))}
    done = subprocess.run([sys.executable, "-m", "duplexbench.engines.browser", str(spec_path), str(out),
                           "--per-page", "7"], capture_output=True, text=True,
                          timeout=scaled(90), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    counters = json.loads((out / "counters.json").read_text())
    seen = {k: counters.get(k) for k in ("pages", "subscribers_never_opened", "scheduled",
                                         "published", "delivered", "reconnects", "errors", "subscriber_states",
                                         "error_messages")}
    assert counters["pages"] == 1 and counters["subscribers_never_opened"] == 1, seen
    assert counters["scheduled"] == 10 and counters["published"] == 0, seen
    assert counters["delivered"] == 0, seen
