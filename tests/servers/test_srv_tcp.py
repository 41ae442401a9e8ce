"""The plain-TCP transport of the aiohttp servers: the listener, lines byte for byte both ways,
resume and reset, bad input, slow consumers, the graceful stop, TLS.

Checked with raw sockets (tests/_tcp_wire.py), never duplexbench's own clients.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import threading
import time
import urllib.request

import pytest

from _srv_helpers import http, metric, publish
from _tcp_wire import LineReader, tcp_connect, tcp_port
from _timeouts import scaled
from duplexbench.contract import encode_envelope, encode_reset
from duplexbench.contract.tcp import encode_hello, encode_line, encode_publish_line, encode_subscribe
from duplexbench.procs.server import ServerProcess

FIRST_LINE = re.compile(r"^duplexbench server listening on (http://127\.0\.0\.1:\d+) "
                        r"and tcp://127\.0\.0\.1:(\d+) \(transports: ([a-z, ]+)\)$")


@pytest.fixture(scope="module")
def srv():
    with ServerProcess("all", args=["--heartbeat", "0.5", "--retention", "20",
                                    "--max-payload", "1000"]) as server:
        yield server


def epoch_of(base: str) -> str:
    return json.loads(http(base + "/healthz")[2])["epoch"]


def subscribe(base: str, topic: str, cursor: str | None = None) -> LineReader:
    reader = LineReader(tcp_connect(base, encode_subscribe(topic, cursor)))
    return reader


# -- the listener --------------------------------------------------------------------------------


def test_first_line_healthz_and_mounts(start_server):
    server = start_server("tcp")
    match = FIRST_LINE.match(server.output[0])
    assert match, server.output[0]
    assert match.group(1) == server.url and match.group(3) == "tcp"
    health = json.loads(http(server.url + "/healthz")[2])
    assert health["transports"] == ["tcp"] and health["tcp_port"] == int(match.group(2))
    for path in ("/poll?topic=t&timeout=0", "/stream?topic=t", "/ws?topic=t"):
        assert http(server.url + path)[0] == 404, path
    assert http(server.url + "/publish?topic=t", "POST", b"x")[0] == 200
    assert 'duplexbench_connections_open{transport="tcp"} 0' in http(server.url + "/metrics")[2].decode()

    ws_only = start_server("websocket")
    assert " and tcp://" not in ws_only.output[0]
    assert json.loads(http(ws_only.url + "/healthz")[2])["tcp_port"] is None
    both = start_server("websocket", args=["--tcp-port", "0"])
    assert json.loads(http(both.url + "/healthz")[2])["transports"] == ["websocket", "tcp"]
    assert tcp_port(both.url) > 0


# -- lines, both directions ----------------------------------------------------------------------


def test_lines_byte_for_byte_both_ways(srv):
    epoch = epoch_of(srv.url)
    a, b = subscribe(srv.url, "bytes"), subscribe(srv.url, "bytes")
    hello = encode_hello(epoch, 0)
    assert hello == f'{{"event":"hello","epoch":"{epoch}","cursor":"{epoch}-0"}}\n'.encode()
    assert a.line() == hello and b.line() == hello
    publish(srv.url, "bytes", 'hé "quoted"\n', ts=2**63 - 1)
    first = encode_line(encode_envelope(1, "bytes", 2**63 - 1, 'hé "quoted"\n'))
    assert a.line() == first and b.line() == first
    # Up the same socket: a publish line (ts as digits, as JavaScript sends it); both get it.
    a.sock.sendall(b'{"data":"from a","ts":"9007199254740993"}\n')
    second = encode_line(encode_envelope(2, "bytes", 9007199254740993, "from a"))
    assert a.line() == second and b.line() == second
    # A publish-only connection: its hello has no cursor, then it receives nothing.
    pub = LineReader(tcp_connect(srv.url, encode_subscribe("bytes", subscribe=False)))
    assert pub.line() == encode_hello(epoch)
    pub.sock.sendall(encode_publish_line("from pub") + b"\n")  # a blank line is ignored
    third = a.line()
    assert json.loads(third)["data"] == "from pub" and third == b.line()
    assert pub.nothing_for(0.3)
    # Heartbeat: a blank line after --heartbeat 0.5 s of silence.
    assert a.line(timeout=2) == b"\n"
    for reader in (a, b, pub):
        reader.sock.close()


def test_metrics_count_tcp_deliveries_and_bytes(srv):
    reader = subscribe(srv.url, "counted")
    reader.line()
    before = (metric(srv.url, "messages_delivered_total", "tcp"),
              metric(srv.url, "bytes_written_total", "tcp"))
    publish(srv.url, "counted", "12345", ts=1)
    line = reader.line()
    after = (metric(srv.url, "messages_delivered_total", "tcp"),
             metric(srv.url, "bytes_written_total", "tcp"))
    assert after[0] - before[0] == 1 and after[1] - before[1] == len(line)
    reader.sock.close()


# -- cursors -------------------------------------------------------------------------------------


def test_resume_by_cursor_gets_exactly_the_missed_messages(srv):
    epoch = epoch_of(srv.url)
    for i in range(3):
        publish(srv.url, "resume", f"m{i}")
    reader = subscribe(srv.url, "resume", "0")
    assert reader.line() == encode_hello(epoch, 0)
    seqs = [json.loads(line)["seq"] for line in reader.lines(3)]
    assert seqs == [1, 2, 3]
    reader.sock.close()
    missed = [publish(srv.url, "resume", f"m{i}") for i in range(3, 7)]
    reader = subscribe(srv.url, "resume", f"{epoch}-3")
    assert reader.line() == encode_hello(epoch, 3)
    got = [json.loads(line) for line in reader.lines(len(missed))]
    assert [(m["seq"], m["data"]) for m in got] == [(s, f"m{s - 1}") for s in missed]
    live = publish(srv.url, "resume", "live")
    assert json.loads(reader.lines(1)[0])["seq"] == live
    assert reader.nothing_for(0.2)  # no duplicates
    reader.sock.close()
    # Legacy bare N and "from now on".
    reader = subscribe(srv.url, "resume", "6")
    assert reader.line() == encode_hello(epoch, 6) and json.loads(reader.lines(1)[0])["seq"] == 7
    reader.sock.close()
    reader = subscribe(srv.url, "resume")
    assert reader.line() == encode_hello(epoch, 8) and reader.nothing_for(0.2)
    reader.sock.close()


def test_cursor_errors_are_error_lines_like_the_http_statuses(srv):
    epoch = epoch_of(srv.url)
    for i in range(25):  # retention 20: seqs 1-5 are gone
        publish(srv.url, "old", f"m{i}")
    reader = subscribe(srv.url, "old", f"{epoch}-2")
    error = json.loads(reader.line())
    assert error["status"] == 410 and error["oldest_seq"] == 6 and error["cursor"] == f"{epoch}-5"
    assert error["epoch"] == epoch and "older than the retention" in error["error"]
    assert reader.until_closed() == b""
    reader = subscribe(srv.url, "old", "0")  # from the oldest retained, never 410
    assert reader.line() == encode_hello(epoch, 5) and json.loads(reader.lines(1)[0])["seq"] == 6
    reader.sock.close()
    reader = subscribe(srv.url, "old", f"{epoch}-26")
    error = json.loads(reader.line())
    assert error["status"] == 400 and error["last_seq"] == 25 and reader.until_closed() == b""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_reset_after_a_restart_then_what_the_new_instance_retains():
    port, tcp = free_port(), free_port()
    with ServerProcess("tcp", port=port, args=["--tcp-port", str(tcp)]) as a:
        old_epoch = epoch_of(a.url)
        for i in range(3):
            publish(a.url, "rs", f"a{i}")
    with ServerProcess("tcp", port=port, args=["--tcp-port", str(tcp)]) as b:
        epoch = epoch_of(b.url)
        assert epoch != old_epoch and tcp_port(b.url) == tcp
        publish(b.url, "rs", "b1")
        publish(b.url, "rs", "b2")
        reader = subscribe(b.url, "rs", f"{old_epoch}-3")
        assert reader.line() == encode_reset(epoch, 0, 2) + b"\n"
        assert [json.loads(line)["data"] for line in reader.lines(2)] == ["b1", "b2"]
        live = publish(b.url, "rs", "live")
        assert json.loads(reader.lines(1)[0])["seq"] == live == 3
        reader.sock.close()


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("send,status,words", [
    (b"SUB topic=t\n", 400, "not JSON"),
    (b'{"topic":"bad topic"}\n', 400, "bad topic"),
    (b'{"topic":"t","cursor":"E-1"}\n', 400, "bad cursor"),
    (b"\xff\xfe\n", 400, "not JSON"),
    (b'{"topic":"t"}\n{"data":5}\n', 400, "publish frame must be"),
    (b'{"topic":"t"}\n{"data":"x","ts":-1}\n', 400, "ts must be"),
    (b'{"topic":"t"}\n{"data":"' + b"x" * 1001 + b'"}\n', 413, "--max-payload 1000"),
    (b'{"topic":"t"}\n' + b"y" * 5000, 413, "line exceeds 1256 bytes"),
    (b"z" * 100_000, 413, "line exceeds 1256 bytes"),
])
def test_bad_input_is_one_error_line_then_close(srv, send, status, words):
    good = subscribe(srv.url, "bystander")
    good.line()
    sock = tcp_connect(srv.url, send)
    reader = LineReader(sock)
    data = reader.until_closed()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    error = json.loads(last)
    assert error["status"] == status and words in error["error"], error
    assert data.endswith(b"}\n")  # the error line is the last thing sent
    seq = publish(srv.url, "bystander", "still here")  # one bad client hurts nobody else
    assert json.loads(good.lines(1)[0])["seq"] == seq
    assert http(srv.url + "/healthz")[0] == 200
    good.sock.close()


def test_server_logged_no_errors(srv):
    assert not [line for line in srv.output if "Traceback" in line or "ERROR" in line], srv.output


# -- slow consumers ------------------------------------------------------------------------------


def test_slow_tcp_consumer_is_dropped_and_others_get_everything(start_server):
    server = start_server("tcp", args=["--queue-limit", "20", "--slow-grace", "0.5"])
    stalled = tcp_connect(server.url, encode_subscribe("slow"), rcvbuf=4096)  # never reads
    good = subscribe(server.url, "slow")
    good.line()
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(
        json.loads(line)["seq"] for line in good.lines(200)))
    reader.start()
    payload = "x" * 50_000  # 10 MB in all: more than socket buffers can hide
    for i in range(200):
        publish(server.url, "slow", f"{i}:{payload}")
    reader.join(scaled(20))
    assert got == list(range(1, 201))
    assert metric(server.url, "slow_consumer_drops_total", "tcp") == 1
    stalled.settimeout(scaled(5))
    with pytest.raises((ConnectionResetError, AssertionError)):
        while stalled.recv(1 << 20):  # what was buffered, then the reset
            pass
        raise AssertionError("closed without a reset")
    stalled.close()
    good.sock.close()


# -- graceful stop and TLS -----------------------------------------------------------------------


def test_sigterm_flushes_every_subscriber_then_closes():
    server = ServerProcess("tcp").start()
    try:
        readers = [subscribe(server.url, "bye") for _ in range(3)]
        for reader in readers:
            reader.line()
        for i in range(50):
            publish(server.url, "bye", f"{i}:" + "z" * 1000)
        server.process.send_signal(signal.SIGTERM)
        for reader in readers:
            rest = reader.until_closed()
            seqs = [json.loads(line)["seq"] for line in rest.split(b"\n") if line.strip()]
            assert seqs == list(range(1, 51))
            reader.sock.close()
        started = time.monotonic()
        assert server.process.wait(scaled(10)) == 0
        assert time.monotonic() - started < 2.5  # gone with its clients, not after --shutdown-timeout
    finally:
        server.stop()


def test_tls_makes_the_tcp_listener_speak_tls(tmp_path):
    from duplexbench.tls import make_certificates

    files = make_certificates(tmp_path)
    args = ["--tls-cert", files.cert_file, "--tls-key", files.key_file]
    with ServerProcess("tcp", args=args, ca_file=files.ca_file) as server:
        assert server.url.startswith("https://") and " and tcp://" in server.output[0]
        context = ssl.create_default_context(cafile=files.ca_file)
        with urllib.request.urlopen(server.url + "/healthz", context=context) as response:
            health = json.loads(response.read())
        raw = socket.create_connection(("127.0.0.1", health["tcp_port"]), timeout=scaled(5))
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(encode_subscribe("tls"))
            reader = LineReader(sock)
            assert reader.line() == encode_hello(health["epoch"], 0)
            sock.sendall(encode_publish_line("secret", 5))
            assert reader.line() == encode_line(encode_envelope(1, "tls", 5, "secret"))
