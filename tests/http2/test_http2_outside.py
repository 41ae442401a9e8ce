"""HTTP/2 direct to an outside server (``--server-url https://...``): the Node reference with
TLS and ``--http2`` stands in for a server nobody here wrote. Its points run direct at both
HTTP versions (stack "outside"), the WebSocket row opens over HTTP/2 because the probe found
RFC 8441, every message arrives; a cleartext outside server with http = "2" is refused up
front, and an https one that offers no h2 fails the probe's h2 rules before any point."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from _parts import needs
from _timeouts import scaled
from tests._scenarios import tiny_scenario
from duplexbench.benchmarks.stacks import NodeServerProcess
from duplexbench.procs.server import ServerProcess
from duplexbench.tls import make_certificates


def _scenario(tmp_path: Path) -> Path:
    path = tmp_path / "outside-h2.toml"
    path.write_text(tiny_scenario("outside-h2", transports=["sse", "websocket"], clients=4,
                                  rate=40, duration_s=1.0, http=["1.1", "2"]))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "duplexbench", "run", *args, "--quiet",
                           "--no-report"], capture_output=True, text=True, timeout=scaled(180))


@needs("node")
def test_outside_node_over_http2_direct(tmp_path):
    tls = make_certificates(tmp_path / "tls")
    server = NodeServerProcess("all", args=[*tls.server_args(), "--http2"])
    server.ca_file = tls.ca_file
    with server:
        done = _run(str(_scenario(tmp_path)), "--server-url", server.url,
                    "--ca-file", tls.ca_file, "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(tmp_path / "run" / "summary.csv", encoding="utf-8") as handle:
        rows = {(r["transport"], r["http"]): r for r in csv.DictReader(handle)}
    assert set(rows) == {("sse", "1.1"), ("sse", "2"), ("websocket", "1.1"), ("websocket", "2")}
    assert all(r["stack"] == "outside" and r["proxy"] == "none" and r["lost"] == "0"
               and int(r["delivered"]) > 0 for r in rows.values()), rows
    assert rows[("websocket", "2")]["ws_over"] == "RFC 8441 (HTTP/2 extended CONNECT)"
    assert rows[("websocket", "1.1")]["ws_over"] == "HTTP/1.1 upgrade"


def test_outside_cleartext_or_without_h2_is_refused_before_measuring(tmp_path):
    with ServerProcess("all") as plain:
        done = _run(str(_scenario(tmp_path)), "--server-url", plain.url,
                    "--out", str(tmp_path / "clear"))
    assert done.returncode == 2 and "measured over https (ALPN h2)" in done.stdout + done.stderr
    tls_dir = tmp_path / "tls"
    server = ServerProcess("all", args=["--tls", "--tls-dir", str(tls_dir)],
                           ca_file=str(tls_dir / "ca.pem")).start()
    try:  # aiohttp over TLS: ALPN offers http/1.1 only, so the probe's h2 rules fail
        done = _run(str(_scenario(tmp_path)), "--server-url", server.url,
                    "--ca-file", str(tls_dir / "ca.pem"), "--out", str(tmp_path / "h1"))
    finally:
        server.stop()
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "breaks the contract" in done.stdout + done.stderr
    assert not (tmp_path / "h1" / "summary.csv").exists()
