"""nginx terminating HTTP/2 in front of the aiohttp servers: TLS with ALPN h2 (the run's
trustme certificate) and a cleartext h2c port, HTTP/1.1 keep-alive upstream; no RFC 8441,
so WebSocket through nginx stays the HTTP/1.1 upgrade and the h2 client says so.

Real nginx (Debian's), a real spawned server, duplexbench's HTTP/2 clients, the probe, curl.
"""

from __future__ import annotations

import asyncio

import pytest

from _h2 import curl, curl_http2, deliver_over_one_page, loadgen, socket_counts_match_tcp_info
from clients.h2conn import NoRFC8441, h2_ssl_context
from clients.h2ws import NO_RFC8441, H2WebSocketSubscriber
from clients.spec import LoadSpec
from duplexbench.probe import Options, probe
from duplexbench.proxies.nginx import (NginxError, NginxProxy, NginxSettings, find_nginx,
                                       http2_new_syntax, nginx_config)
from duplexbench.procs.server import ServerProcess
from duplexbench.tls import make_certificates

needs_nginx = pytest.mark.skipif(find_nginx() is None,
                                 reason="nginx is not installed (apt-get install nginx)")


# ---------------------------------------------------------------------------
# The config (no processes)


def test_http2_config_follows_the_nginx_version(tmp_path):
    settings = NginxSettings(tls_cert="c.pem", tls_key="k.pem", http2=True, h2c=True)
    old = nginx_config(listen_port=8443, upstream="127.0.0.1:9000", directory=tmp_path,
                       settings=settings, h2c_port=8080, version="nginx/1.22.1")
    assert "listen 127.0.0.1:8443 ssl http2 backlog=4096;" in old
    assert "listen 127.0.0.1:8080 http2 backlog=4096;" in old and "http2 on;" not in old
    assert "ssl_certificate " in old and "http2_max_concurrent_streams 256;" in old
    assert "proxy_http_version 1.1;" in old and 'proxy_set_header Connection "";' in old
    new = nginx_config(listen_port=8443, upstream="127.0.0.1:9000", directory=tmp_path,
                       settings=settings, h2c_port=8080, version="nginx/1.25.3")
    assert "listen 127.0.0.1:8443 ssl backlog=4096;" in new and "http2 on;" in new
    assert http2_new_syntax("nginx/1.25.1") and not http2_new_syntax("nginx/1.24.0")
    plain = nginx_config(listen_port=1, upstream="h:1", directory=tmp_path,
                         settings=NginxSettings())
    listen = [line.strip() for line in plain.splitlines() if "listen " in line or "ssl_" in line]
    assert listen == ["listen 127.0.0.1:1 backlog=4096;"]  # HTTP/1.1 points are unchanged


def test_http2_without_tls_is_refused():
    with pytest.raises(NginxError, match="http2 needs tls_cert"):
        NginxSettings(http2=True)
    with pytest.raises(NginxError, match="go together"):
        NginxSettings(tls_cert="c.pem")


# ---------------------------------------------------------------------------
# A real nginx in front of a real server


class Front:
    def __init__(self, proxy: NginxProxy, server: ServerProcess, ca_file: str) -> None:
        self.url, self.h2c_url, self.server_url = proxy.url, proxy.h2c_url, server.url
        self.ca_file = ca_file

    def ctx(self):
        return h2_ssl_context(self.ca_file)


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    if find_nginx() is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    directory = tmp_path_factory.mktemp("nginx-h2")
    tls = make_certificates(directory / "tls")
    settings = NginxSettings(buffering=True, tls_cert=tls.cert_file, tls_key=tls.key_file,
                             http2=True, h2c=True)
    with ServerProcess("all", args=["--heartbeat", "1"]) as server:
        with NginxProxy(server.url, directory / "nginx", settings) as proxy:
            yield Front(proxy, server, tls.ca_file)


@needs_nginx
@pytest.mark.parametrize("over", ["tls", "h2c"])
def test_http_transports_over_http2_through_nginx(front, over):
    """Long polling, SSE and NDJSON on one HTTP/2 connection to nginx (HTTP/1.1 upstream),
    publishing with POST streams on it: every message once, in order."""
    url, ctx = (front.url, front.ctx()) if over == "tls" else (front.h2c_url, None)
    transports = ["longpoll", "sse", "ndjson"]
    got, link, stats = asyncio.run(deliver_over_one_page(url, ctx, transports, f"ng-{over}"))
    assert got == {t: [1, 2, 3, 4, 5] for t in transports}
    assert sum(s.connections for s in stats) == 1 and sum(s.errors for s in stats) == 0
    assert link.conn.alpn == ("h2" if over == "tls" else "")


@needs_nginx
def test_websocket_over_http2_says_nginx_has_no_rfc8441(front):
    async def check():
        sub = H2WebSocketSubscriber(front.url, "ws8441", lambda env, ns: None,
                                    ssl_context=front.ctx())
        try:
            with pytest.raises(NoRFC8441, match=NO_RFC8441):
                await sub.start()
        finally:
            await sub.close()

    asyncio.run(check())


@needs_nginx
def test_client_bytes_agree_with_tcp_info_through_nginx(front):
    ours, kernel = asyncio.run(socket_counts_match_tcp_info(front.h2c_url, "bytes"))
    assert ours == kernel and ours[1] > 20 * 50


@needs_nginx
def test_probe_h2_rules_through_nginx(front):
    """Every h2 rule passes through nginx, except RFC 8441, which it does not advertise (skip);
    the HTTP/1.1 WebSocket upgrade still works on the same TLS port (ALPN http/1.1)."""
    report = probe(Options(url=front.url, ca_file=front.ca_file, h2="on", h2c_url=front.h2c_url,
                           only=("h2*", "ws.handshake", "ws.envelope*")))
    status = {r.rule.id: r.status for r in report.results}
    assert report.ok, [(r.rule.id, r.detail, r.got) for r in report.failed]
    assert status["h2.ws-rfc8441"] == "skip" and status["ws.handshake"] == "pass"
    assert all(s == "pass" for rid, s in status.items() if rid != "h2.ws-rfc8441")


@needs_nginx
@pytest.mark.parametrize("transport", ["longpoll", "ndjson"])
def test_load_point_over_http2_through_nginx(front, tmp_path, transport):
    spec = LoadSpec(transport=transport, sub_url=front.url, pub_url=front.url,
                    ca_file=front.ca_file, http="2", streams_per_connection=3, clients=6,
                    rate=40.0, warmup_s=0.3, duration_s=1.0, drain_s=2.0,
                    topic_prefix=f"ng-lg-{transport}")
    counters = loadgen(spec, tmp_path)
    assert counters["lost"] == 0 and counters["delivered"] == counters["expected"] > 0
    assert counters["errors"] == 0, counters["error_messages"]
    if transport == "longpoll":  # one poll (HEADERS frame) per answer, as over HTTP/1.1
        assert 0 < counters["wire"]["sub"]["http_requests"] <= counters["delivered"]


@needs_nginx
@pytest.mark.skipif(curl_http2() is not None, reason=f"curl: {curl_http2()}")
def test_curl_speaks_http2_to_nginx(front):
    head, body = curl("--http2", "--cacert", front.ca_file, front.url + "/healthz")
    assert head.startswith("HTTP/2 200") and "server: nginx" in head and '"status": "ok"' in body
    head, _ = curl("--http2-prior-knowledge", front.h2c_url + "/poll?topic=curl&timeout=0")
    assert head.startswith("HTTP/2 204")
    head, body = curl("--http2-prior-knowledge", "--max-time", "1", "-H",
                      "Accept: text/event-stream", front.h2c_url + "/stream?topic=curl")
    assert head.startswith("HTTP/2 200") and body.startswith("retry: 1000\nid: ")
