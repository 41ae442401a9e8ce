"""The probe's HTTP/2 rules fail where HTTP/2 is done wrong, and only run when asked.

Broken servers: an HTTP/1.1-only TLS server (ALPN never selects h2), an HTTP/1.1 port given
as the h2c URL, and a "leaky" h2c front, a real HTTP/2 server (the ``h2`` library, server
side) in front of the real app that passes HTTP/1.1's framing through (Connection and
Transfer-Encoding headers, chunked bodies) and advertises RFC 8441 but refuses it. The
passing side is tests/node/test_node_h2.py and tests/proxies/test_nginx_h2.py.
"""

from __future__ import annotations

import asyncio

from _timeouts import scaled
from duplexbench.probe import Options, probe
from duplexbench.probe.core import run_rules
from duplexbench.procs.server import ServerProcess

from ._broken import real_server
from ._broken_h2 import H2_BREAKAGES, leaky_h2c_front


def test_h2_rules_are_not_run_unless_asked():
    async def check():
        async with real_server() as url:
            return await run_rules(Options(url=url, only=("h2*",)))

    report = asyncio.run(check())
    assert report.ok and all(r.status == "skip" for r in report.results)
    assert all("needs --h2" in r.detail for r in report.results)


def test_leaky_http2_front_fails_the_h2_rules():
    async def check():
        async with real_server() as url, leaky_h2c_front(url) as front:
            return await run_rules(Options(url=url, h2="on", h2c_url=front, only=("h2*",),
                                           rule_timeout_s=scaled(5)))

    report = asyncio.run(check())
    status = {r.rule.id: r.status for r in report.results}
    details = {r.rule.id: r.detail for r in report.failed}
    assert {rid for rid, st in status.items() if st == "fail"} >= set(H2_BREAKAGES["leaky h2c front"])
    # Connection-specific headers.
    for rid in ("h2.healthz", "h2.publish", "h2.poll", "h2c.prior-knowledge"):
        assert status[rid] == "fail" and "connection-specific" in details[rid], (rid, details)
    # Streams: Transfer-Encoding and chunk framing in the body.
    assert status["h2.sse"] == "fail" and status["h2.ndjson"] == "fail"
    # RFC 8441 advertised, then refused.
    assert status["h2.ws-rfc8441"] == "fail" and "status" in details["h2.ws-rfc8441"]
    assert status["h2.alpn"] == "skip"  # no TLS here: ALPN is the next test's


def test_one_stream_at_a_time_fails_multiplexing():
    async def check():
        async with real_server() as url, leaky_h2c_front(url, max_streams=1) as front:
            return await run_rules(Options(url=url, h2="on", h2c_url=front,
                                           only=H2_BREAKAGES["one stream at a time"]))

    [result] = asyncio.run(check()).results
    assert result.status == "fail" and "stream" in result.got


def test_http1_only_tls_server_fails_h2_on_and_skips_h2_auto(tmp_path):
    ca_file = str(tmp_path / "tls" / "ca.pem")
    with ServerProcess("all", args=["--tls", "--tls-dir", str(tmp_path / "tls")],
                       ca_file=ca_file) as server:
        on = probe(Options(url=server.url, ca_file=ca_file, h2="on", only=("h2*",)))
        auto = probe(Options(url=server.url, ca_file=ca_file, h2="auto", only=("h2*",)))
    failed = {r.rule.id for r in on.failed}
    assert set(H2_BREAKAGES["HTTP/1.1-only TLS server"]) <= failed
    assert auto.ok and all(r.status == "skip" for r in auto.results)


def test_h2c_url_that_speaks_only_http11_fails_prior_knowledge():
    async def check():
        async with real_server() as url:
            return await run_rules(Options(url=url, h2c_url=url, only=("h2c.*",)))

    report = asyncio.run(check())
    [result] = report.results
    assert (result.rule.id,) == H2_BREAKAGES["HTTP/1.1 port as the h2c URL"]
    assert result.status == "fail" and "HTTP/2 preface" in result.detail
