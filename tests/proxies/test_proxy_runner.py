"""The runner with [proxy]: a point through nginx, summary columns, nginx sampled as `proxy`."""

from __future__ import annotations

import psutil

from duplexbench.commands import run as run_command

from duplexbench.runner import loop
from duplexbench.measure.results import load_run
from _parts import needs

SCENARIO = """
name = "tinyproxy"
transports = ["sse"]
clients = [2]
rate = [40]
payload_bytes = [32]
warmup_s = 0.5
duration_s = 1.5
drain_s = 0.5
[server]
uvloop = false
[proxy]
kind = ["none", "nginx"]
buffering = [false]
"""


@needs("nginx")
def test_run_with_and_without_nginx(tmp_path):
    path = tmp_path / "tinyproxy.toml"
    path.write_text(SCENARIO)
    out = tmp_path / "run"
    assert run_command.main([str(path), "--out", str(out), "--no-report", "--quiet"]) == loop.EXIT_OK
    run = load_run(out)
    summary = run.summary
    assert list(summary["proxy"]) == ["none", "nginx"]
    assert summary["proxy_buffering"].isna().iloc[0] and not summary["proxy_buffering"].iloc[1]
    assert (summary["lost"] == 0).all() and (summary["delivered"] > 0).all()
    load = run.load()
    # nginx is sampled on its own (only at the nginx point) and used some CPU there.
    proxied = load[load["process"] == "proxy"]
    assert set(proxied["point"]) == {1}
    assert summary["proxy_cpu_s"].iloc[1] >= 0 and summary["proxy_cpu_s"].isna().iloc[0]
    assert not [p for p in psutil.Process().children(recursive=True)
                if p.status() != psutil.STATUS_ZOMBIE and "nginx" in " ".join(p.cmdline())]
