"""A tiny HTTP/2 run end to end (real nginx, real Node reference): every point delivers
every message, the rows say which HTTP version and stack ran, WebSocket through nginx says
it has no RFC 8441, and the report's HTTP/2 section and the claims' HPACK row exist."""

from __future__ import annotations

import pytest

from duplexbench.commands import run as run_command
from duplexbench.measure.results import load_run
from duplexbench.runner import loop
from _parts import needs

SCENARIO = """
name = "tinyh2"
transports = ["longpoll", "websocket"]
http = ["1.1", "2"]
clients = 3
rate = 40   # 120 latency samples a point: comparable rows (few-samples is not), for the claims
warmup_s = 0.3
duration_s = 1
drain_s = 0.5
[server]
uvloop = false
tls = true
stack = ["python", "node"]
[proxy]
kind = ["none", "nginx"]
buffering = false
"""

pytestmark = [needs("nginx"), needs("node")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tinyh2")
    path = tmp / "tinyh2.toml"
    path.write_text(SCENARIO)
    out = tmp / "run"
    assert run_command.main([str(path), "--out", str(out), "--no-report", "--quiet"]) == loop.EXIT_OK
    return load_run(out)


def test_every_point_delivers_every_message(run):
    s = run.summary
    got = sorted(zip(s["transport"], s["stack"], s["proxy"], s["http"].astype(str)))
    assert got == sorted((t, stack, proxy, http) for t in ("longpoll", "websocket")
                         for stack, proxy, http in (("python", "none", "1.1"),
                                                    ("python", "nginx", "1.1"),
                                                    ("python", "nginx", "2"),
                                                    ("node", "none", "1.1"),
                                                    ("node", "none", "2")))
    assert (s["lost"] == 0).all() and (s["delivered"] > 0).all(), s[["transport", "lost"]]


def test_websocket_rows_say_how_they_ran(run):
    s = run.summary
    ws = s[(s["transport"] == "websocket") & (s["http"].astype(str) == "2")]
    over = dict(zip(ws["stack"], ws["ws_over"]))
    assert over["node"].startswith("RFC 8441")
    assert over["python"] == "HTTP/1.1 upgrade: this path has no RFC 8441"
    assert "no RFC 8441" in ws[ws["stack"] == "python"]["warnings"].iloc[0]


def test_report_ratios_and_hpack_claim(run):
    from duplexbench.report.claims import claim_rows
    from duplexbench.report.http2 import http2_rows

    pairs = {(r["transport"], r["path"]) for r in http2_rows(run.summary)}
    assert {("longpoll", "python via nginx"), ("longpoll", "node direct"),
            ("websocket", "node direct")} <= pairs
    hpack = [r for r in claim_rows([run]) if r["source"].startswith("RFC 7541")]
    assert len(hpack) == 2 and all(r["verdict"] in ("confirmed", "not confirmed") for r in hpack)
