"""nginx in the path: the generated config starts, proxies every transport, upgrades
WebSockets, and a scenario's [proxy] table becomes points and summary columns.

Real nginx (Debian's /usr/sbin/nginx), real servers, real sockets; the tests that
need nginx skip and say so when it is not installed (apt-get install nginx).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from duplexbench.proxies.nginx import (
    NginxProxy,
    NginxSettings,
    nginx_config,
)
from duplexbench.scenario import ScenarioError, parse_scenario
from duplexbench.scenario.proxy import parse_proxy, proxy_variants
from tests._timeouts import scaled
from _parts import needs

needs_nginx = needs("nginx")


# ---------------------------------------------------------------------------
# Config and scenario (no processes)


def test_config_has_the_deployment_settings(tmp_path):
    text = nginx_config(listen_port=8081, upstream="127.0.0.1:9000", directory=tmp_path,
                        settings=NginxSettings(buffering=False, read_timeout_s=75))
    assert "proxy_http_version 1.1;" in text
    assert "keepalive 64;" in text and "server 127.0.0.1:9000;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_buffering off;" in text and "proxy_read_timeout 75s;" in text
    assert f"pid {tmp_path.resolve()}/nginx.pid;" in text
    assert "/var/" not in text and "gzip off;" in text
    on = nginx_config(listen_port=1, upstream="h:1", directory=tmp_path,
                      settings=NginxSettings(buffering=True, gzip=True))
    assert "proxy_buffering on;" in on and "gzip on;" in on


def test_proxy_table_sweeps_per_transport():
    options = parse_proxy({"kind": ["none", "nginx"], "buffering": [True, False],
                           "accel_header": [True, False]})
    # Streams: direct, buffering on x header on/off, buffering off (the header is moot).
    assert proxy_variants(options, "sse") == [
        ("none", None, True, False), ("nginx", True, True, False),
        ("nginx", True, False, False), ("nginx", False, True, False)]
    assert proxy_variants(options, "websocket") == [
        ("none", None, True, False), ("nginx", True, True, False), ("nginx", False, True, False)]
    scenario = parse_scenario({"name": "p", "transports": ["sse", "longpoll"], "clients": [2],
                               "proxy": {"kind": ["none", "nginx"], "buffering": [True, False],
                                         "accel_header": [True, False]}})
    points = scenario.points()
    assert len(points) == 4 + 3
    assert {(p.proxy, p.proxy_buffering, p.accel_header) for p in points if p.transport == "sse"} \
        == {("none", None, True), ("nginx", True, True), ("nginx", True, False), ("nginx", False, True)}
    assert parse_scenario(scenario.to_dict()) == scenario


@pytest.mark.parametrize("table, words", [
    ({"kind": "apache"}, "proxy.kind"),
    ({"buffering": "yes"}, "proxy.buffering"),
    ({"buffering": [True, True]}, "each value once"),
    ({"bufering": True}, "unknown key 'proxy.bufering'"),
])
def test_bad_proxy_table_is_a_clear_error(table, words):
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"name": "p", "proxy": table})
    assert words in str(info.value)


# ---------------------------------------------------------------------------
# A real nginx in front of a real server


def _get(url: str, headers: dict | None = None, timeout: float = 5.0):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=scaled(timeout)) as response:
        return response.status, dict(response.headers), response.read()


def _publish(url: str, topic: str, data: str) -> int:
    request = urllib.request.Request(f"{url}/publish?topic={topic}", data=data.encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=scaled(5)) as response:
        return json.loads(response.read())["seq"]


@pytest.fixture
def nginx(server, tmp_path):
    with NginxProxy(server.url, tmp_path / "nginx", NginxSettings(buffering=True)) as proxy:
        yield proxy


@needs_nginx
def test_generated_config_starts_and_proxies_http(nginx, server):
    assert (nginx.directory / "nginx.conf").exists() and (nginx.directory / "nginx.pid").exists()
    status, headers, body = _get(nginx.url + "/healthz")
    assert status == 200 and headers["Server"].startswith("nginx")
    assert json.loads(body)["status"] == "ok"
    # Long polling through nginx: a message published to the server reaches the poll.
    seq = _publish(server.url, "lp", "hello")
    status, headers, body = _get(nginx.url + "/poll?topic=lp&cursor=0&timeout=2")
    assert status == 200 and headers["Server"].startswith("nginx")
    assert [m["seq"] for m in json.loads(body)] == [seq]


def _read_stream(url: str, path: str, accept: str, publish) -> bytes:
    """Open a stream through the proxy with a raw socket, publish, read until the message."""
    host, port = url.split("://")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=scaled(5)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {accept}\r\n\r\n"
                     .encode())
        data = b""
        deadline = time.monotonic() + scaled(5)
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            data += sock.recv(65536)
        publish()
        while b"needle" not in data and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@needs_nginx
@pytest.mark.parametrize("accept, marker", [("text/event-stream", b"data: {"),
                                            ("application/x-ndjson", b'{"seq":1')])
def test_streams_pass_through_nginx(nginx, server, accept, marker):
    topic = "st" + accept[-3:].replace("/", "")
    data = _read_stream(nginx.url, f"/stream?topic={topic}", accept,
                        lambda: _publish(server.url, topic, "needle"))
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200") and "Server: nginx" in head
    assert marker in data and b"needle" in data


@needs_nginx
def test_websocket_upgrade_through_nginx(nginx, server):
    from websockets.sync.client import connect

    ws_url = nginx.url.replace("http://", "ws://") + "/ws?topic=wsn&cursor=0"
    with connect(ws_url, open_timeout=scaled(5)) as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers.get("Server", "").startswith("nginx")
        seq = _publish(server.url, "wsn", "through")
        message = json.loads(ws.recv(timeout=scaled(5)))
        while message.get("event") == "reset":  # a contract-v2 server may announce its epoch
            message = json.loads(ws.recv(timeout=scaled(5)))
        assert message["seq"] == seq and message["data"] == "through"
        ws.send(json.dumps({"data": "up", "ts": 1}))  # publishing over the tunnel works too
        assert json.loads(ws.recv(timeout=scaled(5)))["data"] == "up"


@needs_nginx
def test_bad_config_fails_with_nginx_words(tmp_path, server, monkeypatch):
    from duplexbench.proxies import nginx as module

    monkeypatch.setattr(module, "nginx_config", lambda **kw: "events {}\nhttp { bogus_directive on; }\n")
    with pytest.raises(module.NginxError) as info:
        NginxProxy(server.url, tmp_path / "bad", NginxSettings()).start()
    assert "bogus_directive" in str(info.value)


def _first_event_after_publish(url: str, server_url: str, topic: str, wait_s: float) -> bool:
    """Open SSE through ``url`` asking for gzip, publish once: did any body byte arrive?"""
    host, port = url.split("://")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=scaled(5)) as sock:
        sock.sendall(f"GET /stream?topic={topic} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     "Accept: text/event-stream\r\nAccept-Encoding: gzip\r\n\r\n".encode())
        time.sleep(0.3)  # the server has the subscriber (its preamble is written, maybe held)
        _publish(server_url, topic, "needle")
        sock.settimeout(wait_s)
        try:
            return bool(sock.recv(65536))
        except socket.timeout:
            return False


@needs_nginx
def test_buffering_with_gzip_holds_a_stream_unless_the_server_says_no(start_server, tmp_path):
    """RFC 6202 §3.2 in nginx: buffering + gzip hold an SSE stream's events; the server's
    X-Accel-Buffering: no (sent by default) makes nginx pass every write on."""
    from duplexbench.proxies.extension import server_args
    from duplexbench.scenario import LoadPoint

    quiet = LoadPoint(0, 0, "sse", 1, 1.0, 8, proxy="nginx", proxy_buffering=True,
                      accel_header=False, proxy_gzip=True)
    assert server_args(quiet) == ["--trust-forwarded-proto", "--no-accel-buffering-header"]
    settings = NginxSettings(buffering=True, gzip=True)
    for accel, arrives in ((True, True), (False, False)):
        server = start_server("stream", args=["--heartbeat", "30"]
                              + ([] if accel else server_args(quiet)))
        with NginxProxy(server.url, tmp_path / f"gz{accel}", settings) as proxy:
            # Waiting longer for the held case proves nothing more: 1.5 s is ~1,000x the
            # latency of a stream that is passed on.
            wait = scaled(1.5) if arrives else 1.5
            assert _first_event_after_publish(proxy.url, server.url, f"gz{int(accel)}",
                                              wait) is arrives
