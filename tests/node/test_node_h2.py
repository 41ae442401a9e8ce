"""The Node reference over HTTP/2: TLS with ALPN (h2 and http/1.1 on one port), h2c with prior
knowledge on its own port, every route of the contract, WebSocket as RFC 8441.

Real ``node server.js --tls-cert --tls-key --http2 --h2c-port 0`` with a trustme certificate,
real sockets, duplexbench's own HTTP/2 clients (clients.h2*), the probe's h2 rules, curl.
Skipped with the reason when Node or servers/node/node_modules (``make node``) is missing.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time

import pytest

from _h2 import (curl, curl_http2, deliver_over_one_page, loadgen, resume_after_drop,
                 socket_counts_match_tcp_info)
from _timeouts import scaled
from clients.h2conn import H2ClientConnection, h2_ssl_context
from clients.h2sub import H2Link, H2LongPollSubscriber, H2SSESubscriber
from clients.h2ws import H2WebSocketSubscriber
from clients.base import WireStats, parse_base_url
from clients.spec import LoadSpec
from duplexbench.probe.h2wire import H2Conn
from duplexbench.probe.wire import Target
from duplexbench.benchmarks.stacks import NodeServerProcess, node_unavailable
from duplexbench.tls import make_certificates

_REASON = node_unavailable()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"Node reference unavailable: {_REASON}")


ALLOWED = "http://app.example"


class H2Node:
    def __init__(self, server: NodeServerProcess, ca_file: str) -> None:
        self.url = server.url  # https://: ALPN h2 and http/1.1
        self.h2c_url = re.search(r"h2c (http://[^\s);]+)", server.output[0]).group(1)
        self.ca_file = ca_file

    def ctx(self):
        return h2_ssl_context(self.ca_file)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tls = make_certificates(tmp_path_factory.mktemp("node-h2-tls"))
    server = NodeServerProcess("all", args=[*tls.server_args(), "--http2", "--h2c-port", "0",
                                            "--heartbeat", "0.5", "--retention", "20",
                                            "--allow-origin", ALLOWED])
    server.ca_file = tls.ca_file  # /healthz over https is verified against the run's CA
    with server:
        yield H2Node(server, tls.ca_file)


def test_start_line_names_the_listeners(node):
    assert node.url.startswith("https://127.0.0.1:") and node.h2c_url.startswith("http://127.0.0.1:")


def test_bad_http2_options_exit_2():
    for args, words in ((["--http2"], "--http2 needs --tls-cert"),
                        (["--tls-cert", "x.pem"], "go together"),
                        (["--h2c-port", "70000"], "--h2c-port 70000")):
        done = subprocess.run(["node", "servers/node/server.js", "--port", "0", *args],
                              capture_output=True, text=True, timeout=scaled(10))
        assert done.returncode == 2 and words in done.stderr, done.stderr


@pytest.mark.parametrize("over", ["tls", "h2c"])
def test_every_transport_over_one_http2_connection(node, over):
    """Long polling, SSE, NDJSON and RFC 8441 WebSocket subscribers on one connection (a page),
    publishing with POST streams on it: every message once, in order, one TCP connection."""
    url, ctx = (node.url, node.ctx()) if over == "tls" else (node.h2c_url, None)
    transports = ["longpoll", "sse", "ndjson", "websocket"]
    got, link, stats = asyncio.run(deliver_over_one_page(url, ctx, transports, f"page-{over}"))
    assert got == {t: [1, 2, 3, 4, 5] for t in transports}
    assert sum(s.connections for s in stats) == 1 and sum(s.reconnects for s in stats) == 0
    # One HEADERS frame per request: 1 stream each + 5 POSTs + the long poll's 5 re-polls.
    assert sum(s.http_requests for s in stats) == 4 + 5 + 5
    assert link.conn.alpn == ("h2" if over == "tls" else "")


def test_a_dropped_page_resumes_every_subscription_from_its_cursor(node):
    """The page's connection is cut: long polling, SSE, NDJSON and the RFC 8441 WebSocket each
    resume from the last seq they hold (epoch cursors, as over HTTP/1.1), on one new
    connection, and nothing is lost or doubled."""
    transports = ["longpoll", "sse", "ndjson", "websocket"]
    got, stats, link = asyncio.run(resume_after_drop(node.h2c_url, None, transports, "drop"))
    assert got == {t: [1, 2, 3, 4, 5, 6] for t in transports}
    assert all(s.reconnects == 1 for s in stats)
    assert sum(s.connections for s in stats) == 2  # the first connection and one after the cut


def test_a_cursor_of_another_epoch_is_reset_over_http2(node):
    """Contract v2 over h2: a subscriber holding another instance's cursor (the server
    restarted) gets the reset (long polling: 410; WebSocket: the first frame), says so,
    continues at the new cursor and receives what is published next."""

    async def check():
        got = {"longpoll": [], "websocket": []}
        errors: list[str] = []
        link = H2Link(node.h2c_url)
        subs = []
        for kind, cls in (("longpoll", H2LongPollSubscriber), ("websocket", H2WebSocketSubscriber)):
            sub = cls(node.h2c_url, "epochs", lambda env, ns, k=kind: got[k].append(env.data),
                      cursor=7, link=link, on_error=errors.append)
            sub.epoch = "zz9other"  # a cursor of a server instance that is gone
            subs.append(sub)
            await sub.start()
        await asyncio.sleep(0.2)
        await subs[0].publish("after", 1)
        deadline = time.monotonic() + scaled(5)
        while any(not v for v in got.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        epochs = [sub.epoch for sub in subs]
        for sub in subs:
            await sub.close()
        return got, errors, epochs

    got, errors, epochs = asyncio.run(check())
    assert got == {"longpoll": ["after"], "websocket": ["after"]}
    assert sum("server restarted (epoch zz9other ->" in e for e in errors) == 2, errors
    assert epochs[0] == epochs[1] != "zz9other"


def test_client_bytes_agree_with_tcp_info(node):
    ours, kernel = asyncio.run(socket_counts_match_tcp_info(node.h2c_url, "bytes"))
    assert ours == kernel and ours[1] > 20 * 50


def test_alpn_selects_h2_and_refuses_silent_http1(node):
    async def check():
        conn = await H2ClientConnection.open(parse_base_url(node.url), WireStats(),
                                             ssl=node.ctx())
        assert conn.alpn == "h2" and conn.connect_protocol  # RFC 8441 advertised
        conn.close()
        import ssl

        http1 = ssl.create_default_context(cafile=node.ca_file)
        http1.set_alpn_protocols(["http/1.1"])
        with pytest.raises(Exception, match="did not select HTTP/2 by ALPN"):
            await H2ClientConnection.open(parse_base_url(node.url), WireStats(), ssl=http1)

    asyncio.run(check())


def test_origin_policy_over_http2(node):
    """Same origin is the listener's scheme and :authority; others need --allow-origin."""

    async def check():
        answers = {}
        for url, ctx in ((node.url, node.ca_file), (node.h2c_url, "")):
            conn = await H2Conn.open(Target.parse(url, ctx), ctx)
            own = url  # scheme://127.0.0.1:PORT, as a page from this origin sends it
            for origin in (own, own.replace("127.0.0.1", "localhost"), ALLOWED):
                s = conn.request("POST", "/publish?topic=orig", [("origin", origin)], b"o")
                await conn.done(s)
                answers[(url, origin)] = (s.status, s.get("access-control-allow-origin"))
            conn.close()
        return answers

    answers = asyncio.run(check())
    for url in (node.url, node.h2c_url):
        assert answers[(url, url)] == (200, None)
        assert answers[(url, url.replace("127.0.0.1", "localhost"))][0] == 403
        assert answers[(url, ALLOWED)] == (200, ALLOWED)


def test_bad_extended_connects_get_4xx_and_spare_the_others(node):
    """Extended CONNECTs on another path, with a bad topic, another version: a 4xx
    on that stream; a subscriber on the same connection keeps receiving."""

    async def check():
        conn = await H2Conn.open(Target.parse(node.h2c_url))
        good = conn.request("CONNECT", "/ws?topic=spare", [("sec-websocket-version", "13")],
                            end_stream=False, protocol="websocket")
        await conn.head(good)
        assert good.status == 200
        cases = [("/ws?topic=bad!", "websocket", "13", 400),
                 ("/poll?topic=a", "websocket", "13", 405),
                 ("/nowhere", "websocket", "13", 404),
                 ("/ws?topic=a", "websocket", "8", 426)]
        for path, protocol, version, status in cases:
            s = conn.request("CONNECT", path, [("sec-websocket-version", version)],
                             end_stream=False, protocol=protocol)
            await conn.done(s)
            assert s.status == status, (path, s.status, s.body)
            assert b'"error"' in s.body
        post = conn.request("POST", "/publish?topic=spare", [], b"still here")
        await conn.done(post)
        await asyncio.wait_for(conn.until(good, b"still here"), scaled(2))
        conn.close()

    asyncio.run(check())


def test_probe_passes_with_the_h2_rules(node, tmp_path):
    """The whole contract over TLS (HTTP/1.1 by ALPN) plus every h2 rule, none skipped."""
    done = subprocess.run(
        [sys.executable, "-m", "duplexbench", "probe", node.url, "--ca-file", node.ca_file,
         "--h2", "on", "--h2c-url", node.h2c_url, "--heartbeat", "0.5", "--retention", "20",
         "--allowed-origin", ALLOWED],
        capture_output=True, text=True, timeout=scaled(90))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 fail, 0 skip" in done.stdout, done.stdout[-3000:]
    assert "PASS  h2.ws-rfc8441" in done.stdout and "PASS  h2c.prior-knowledge" in done.stdout


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_load_point_over_http2_pages(node, tmp_path, transport):
    """A whole point with http = "2": pages of 4 subscriptions on one connection, POSTs as
    streams of the publisher's connection; nothing lost, one request per subscription."""
    spec = LoadSpec(transport=transport, sub_url=node.url, ca_file=node.ca_file, http="2",
                    streams_per_connection=4, clients=8, rate=40.0, warmup_s=0.3,
                    duration_s=1.0, drain_s=2.0, topic_prefix=f"lg-{transport}")
    counters = loadgen(spec, tmp_path)
    assert counters["lost"] == 0 and counters["delivered"] == counters["expected"] > 0
    assert counters["errors"] == 0, counters["error_messages"]
    assert counters["wire"]["sub"]["http_requests"] == 0  # streams: no request in the window
    assert counters["wire"]["pub"]["http_requests"] == counters["published"]


@pytest.mark.skipif(curl_http2() is not None, reason=f"curl: {curl_http2()}")
def test_curl_speaks_http2_to_it(node):
    head, body = curl("--http2", "--cacert", node.ca_file, node.url + "/healthz")
    assert head.startswith("HTTP/2 200") and '"stack":"node"' in body
    head, body = curl("--http2-prior-knowledge", node.h2c_url + "/poll?topic=curl&timeout=0")
    assert head.startswith("HTTP/2 204") and "duplexbench-epoch:" in head
    head, body = curl("--http2-prior-knowledge", "-H", "Accept: text/event-stream",
                      "--max-time", "1", node.h2c_url + "/stream?topic=curl")
    assert head.startswith("HTTP/2 200") and body.startswith("retry: 1000\nid: ")
    assert "transfer-encoding" not in head.lower() and "connection:" not in head.lower()


def test_sigterm_over_http2_delivers_the_last_message_and_closes_websockets_1001():
    """Graceful stop over h2: GOAWAY first, then the open streams finish (the clients keep
    reading after GOAWAY, RFC 9113 6.8): SSE and the RFC 8441 WebSocket get the last message,
    the stream ends, the WebSocket is closed with 1001; the process exits 0."""
    server = NodeServerProcess("all", args=["--h2c-port", "0"]).start()
    h2c_url = re.search(r"h2c (http://[^\s);]+)", server.output[0]).group(1)
    got, errors = {"sse": [], "websocket": []}, []

    async def check():
        link = H2Link(h2c_url)
        subs = [cls(h2c_url, "bye", lambda env, ns, k=k: got[k].append(env.data), link=link,
                    on_error=errors.append, backoff=(5.0, 5.0))
                for k, cls in (("sse", H2SSESubscriber), ("websocket", H2WebSocketSubscriber))]
        for sub in subs:
            await sub.start()
        await subs[0].publish("last", 1)
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + scaled(5)
        while len(errors) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for sub in subs:
            await sub.close()

    try:
        asyncio.run(check())
        assert server.process.wait(scaled(10)) == 0
    finally:
        server.stop()
    assert got == {"sse": ["last"], "websocket": ["last"]}
    assert any("sse bye: the server ended the stream" in e for e in errors), errors
    assert any("websocket bye: the server ended the stream (close code 1001)" in e
               for e in errors), errors
