"""The probe's HTTP/2 rules fail where HTTP/2 is done wrong, and only run when asked.

Broken servers: an HTTP/1.1-only TLS server (ALPN never selects h2), an HTTP/1.1 port given
as the h2c URL, and a "leaky" h2c front, a real HTTP/2 server (the ``h2`` library, server
side) in front of the real app that passes HTTP/1.1's framing through (Connection and
Transfer-Encoding headers, chunked bodies) and advertises RFC 8441 but refuses it. The
passing side is tests/node/test_node_h2.py and tests/proxies/test_nginx_h2.py.
"""

from __future__ import annotations

import asyncio
import contextlib

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, StreamEnded
from h2.settings import SettingCodes, Settings

from _timeouts import scaled
from duplexbench.probe import Options, probe
from duplexbench.probe.core import run_rules
from duplexbench.serverproc import ServerProcess

from ._broken import real_server


@contextlib.asynccontextmanager
async def leaky_h2c_front(upstream: str):
    """h2c on a free port, each request relayed to ``upstream`` over HTTP/1.1 with its
    response head and raw body (chunk framing included) copied onto the HTTP/2 stream."""
    host, port = upstream.split("://")[1].split(":")

    async def relay(h2, writer, sid, headers, body):
        method, path = headers[b":method"], headers[b":path"]
        reader_up, writer_up = await asyncio.open_connection(host, int(port))
        extra = b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers.items()
                         if not k.startswith(b":") and k != b"content-length")
        # Connection: close, so a complete answer ends the relay (streams never end).
        writer_up.write(b"%s %s HTTP/1.1\r\nHost: %s:%s\r\n%sContent-Length: %d\r\n"
                        b"Connection: close\r\n\r\n%s" % (method, path, host.encode(),
                                                          port.encode(), extra, len(body), body))
        head = await reader_up.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = [(b":status", lines[0].split(" ")[1].encode())]
        fields += [(k.strip().lower().encode(), v.strip().encode())
                   for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
        # Transfer-Encoding passed through, and the Connection header an HTTP/1.1 server adds.
        h2.send_headers(sid, fields + [(b"connection", b"keep-alive")])
        writer.write(h2.data_to_send())
        while data := await reader_up.read(65536):
            h2.send_data(sid, data)  # chunk framing passed through
            writer.write(h2.data_to_send())
        h2.end_stream(sid)
        writer.write(h2.data_to_send())
        writer_up.close()

    async def serve(reader, writer):
        h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None,
                                          validate_outbound_headers=False,
                                          normalize_outbound_headers=False))
        h2.local_settings = Settings(client=False, initial_values={  # RFC 8441 advertised,
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})                 # then refused below
        h2.initiate_connection()
        writer.write(h2.data_to_send())
        requests, tasks = {}, []
        try:
            while data := await reader.read(65536):
                for ev in h2.receive_data(data):
                    if isinstance(ev, RequestReceived):
                        requests[ev.stream_id] = (dict(ev.headers), b"")
                        if dict(ev.headers)[b":method"] == b"CONNECT":
                            h2.send_headers(ev.stream_id, [(b":status", b"501")], end_stream=True)
                    elif isinstance(ev, DataReceived) and ev.stream_id in requests:
                        h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        fields, body = requests[ev.stream_id]
                        requests[ev.stream_id] = (fields, body + ev.data)
                    elif isinstance(ev, StreamEnded) and ev.stream_id in requests:
                        fields, body = requests.pop(ev.stream_id)
                        tasks.append(asyncio.create_task(relay(h2, writer, ev.stream_id,
                                                               fields, body)))
                writer.write(h2.data_to_send())
        except (ConnectionError, OSError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


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
    # Connection-specific headers.
    for rid in ("h2.healthz", "h2.publish", "h2.poll", "h2c.prior-knowledge"):
        assert status[rid] == "fail" and "connection-specific" in details[rid], (rid, details)
    # Streams: Transfer-Encoding and chunk framing in the body.
    assert status["h2.sse"] == "fail" and status["h2.ndjson"] == "fail"
    # RFC 8441 advertised, then refused.
    assert status["h2.ws-rfc8441"] == "fail" and "status" in details["h2.ws-rfc8441"]
    assert status["h2.alpn"] == "skip"  # no TLS here: ALPN is the next test's


def test_http1_only_tls_server_fails_h2_on_and_skips_h2_auto(tmp_path):
    ca_file = str(tmp_path / "tls" / "ca.pem")
    with ServerProcess("all", args=["--tls", "--tls-dir", str(tmp_path / "tls")],
                       ca_file=ca_file) as server:
        on = probe(Options(url=server.url, ca_file=ca_file, h2="on", only=("h2*",)))
        auto = probe(Options(url=server.url, ca_file=ca_file, h2="auto", only=("h2*",)))
    failed = {r.rule.id for r in on.failed}
    assert {"h2.alpn", "h2.healthz", "h2.sse", "h2.ws-rfc8441"} <= failed
    assert auto.ok and all(r.status == "skip" for r in auto.results)


def test_h2c_url_that_speaks_only_http11_fails_prior_knowledge():
    async def check():
        async with real_server() as url:
            return await run_rules(Options(url=url, h2c_url=url, only=("h2c.*",)))

    report = asyncio.run(check())
    [result] = report.results
    assert result.status == "fail" and "HTTP/2 preface" in result.detail
