"""The Node reference's plain-TCP listener (servers/node/tcp.js): the same lines as the aiohttp
servers, byte for byte, and duplexbench's own load generator over it without a loss.

Skipped, with the reason, without Node 20+ or servers/node/node_modules (``make node``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

from _tcp_wire import LineReader, tcp_connect, tcp_port
from _timeouts import scaled
from clients.spec import LoadSpec
from duplexbench.contract import encode_envelope, encode_reset
from duplexbench.contract.tcp import encode_hello, encode_line, encode_publish_line, encode_subscribe
from duplexbench.benchmarks.stacks import NodeServerProcess, node_unavailable

_REASON = node_unavailable()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"Node reference unavailable: {_REASON}")


@pytest.fixture(scope="module")
def node_url():
    with NodeServerProcess("all", args=["--heartbeat", "0.5", "--retention", "20",
                                        "--max-payload", "1000"]) as server:
        yield server.url


def health(base: str) -> dict:
    with urllib.request.urlopen(base + "/healthz", timeout=scaled(5)) as response:
        return json.loads(response.read())


def publish(base: str, topic: str, data: str, ts: int | None = None) -> int:
    query = {"topic": topic} | ({"ts": str(ts)} if ts is not None else {})
    request = urllib.request.Request(f"{base}/publish?{urllib.parse.urlencode(query)}",
                                     data=data.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=scaled(5)) as response:
        return json.loads(response.read())["seq"]


def subscribe(base: str, topic: str, cursor: str | None = None) -> LineReader:
    return LineReader(tcp_connect(base, encode_subscribe(topic, cursor)))


def test_listener_first_line_and_healthz():
    with NodeServerProcess("tcp") as server:
        assert " and tcp://127.0.0.1:" in server.output[0] and "(transports: tcp)" in server.output[0]
        info = health(server.url)
        assert info["transports"] == ["tcp"] and info["tcp_port"] == int(
            server.output[0].split("tcp://127.0.0.1:")[1].split(" ")[0])
        assert info["inject"] == {"delay_ms": 0, "pad_bytes": 0, "cpu_us": 0}
    with NodeServerProcess("websocket", args=["--tcp-port", "0"]) as server:
        assert health(server.url)["transports"] == ["websocket", "tcp"] and tcp_port(server.url) > 0


def test_lines_are_the_python_servers_bytes(node_url):
    epoch = health(node_url)["epoch"]
    a, b = subscribe(node_url, "bytes"), subscribe(node_url, "bytes")
    assert a.line() == encode_hello(epoch, 0) == b.line()
    tricky = 'a\x00\x1f\x7f\t\n"\\/ é€😀\u2028 <>&'
    publish(node_url, "bytes", tricky, ts=2**63 - 1)
    expected = encode_line(encode_envelope(1, "bytes", 2**63 - 1, tricky))
    assert a.line() == expected == b.line()
    a.sock.sendall(b'{"data":"from a","ts":"9007199254740993"}\n')
    expected = encode_line(encode_envelope(2, "bytes", 9007199254740993, "from a"))
    assert a.line() == expected == b.line()
    pub = LineReader(tcp_connect(node_url, encode_subscribe("bytes", subscribe=False)))
    assert pub.line() == encode_hello(epoch)
    pub.sock.sendall(encode_publish_line("from pub", 3) + b"\n")
    assert a.line() == encode_line(encode_envelope(3, "bytes", 3, "from pub")) == b.line()
    assert pub.nothing_for(0.3)
    assert a.line(timeout=2) == b"\n"  # heartbeat after 0.5 s of silence
    for reader in (a, b, pub):
        reader.sock.close()


def test_resume_410_400_and_reset(node_url):
    epoch = health(node_url)["epoch"]
    for i in range(25):  # retention 20
        publish(node_url, "cur", f"m{i}")
    reader = subscribe(node_url, "cur", f"{epoch}-22")
    assert reader.line() == encode_hello(epoch, 22)
    assert [json.loads(line)["seq"] for line in reader.lines(3)] == [23, 24, 25]
    reader.sock.close()
    reader = subscribe(node_url, "cur", f"{epoch}-2")
    error = json.loads(reader.line())
    assert error == {"error": "cursor 2 is older than the retention window: the oldest retained seq is 6",
                     "status": 410, "epoch": epoch, "oldest_seq": 6, "cursor": f"{epoch}-5"}
    assert reader.until_closed() == b""
    reader = subscribe(node_url, "cur", f"{epoch}-26")
    error = json.loads(reader.line())
    assert error["status"] == 400 and error["last_seq"] == 25
    reader = subscribe(node_url, "cur", "other1-3")
    assert reader.line() == encode_reset(epoch, 5, 25) + b"\n"
    assert json.loads(reader.lines(1)[0])["seq"] == 6
    reader.sock.close()


@pytest.mark.parametrize("send,status,words", [
    (b"SUB topic=t\n", 400, "not JSON"),
    (b'{"topic":"bad topic"}\n', 400, "bad topic"),
    (b'{"topic":"t","cursor":"E-1"}\n', 400, "bad cursor"),
    (b"\xff\xfe\n", 400, "not JSON"),
    (b'{"topic":"t"}\n{"data":5}\n', 400, "publish frame must be"),
    (b'{"topic":"t"}\n{"data":"\\ud800"}\n', 400, "lone surrogate"),
    (b'{"topic":"t"}\n{"data":"' + b"x" * 1001 + b'"}\n', 413, "--max-payload 1000"),
    (b"z" * 100_000, 413, "line exceeds 1256 bytes"),
])
def test_bad_input_is_one_error_line_then_close(node_url, send, status, words):
    good = subscribe(node_url, "bystander")
    good.line()
    reader = LineReader(tcp_connect(node_url, send))
    data = reader.until_closed()
    error = json.loads(data.rstrip(b"\n").rsplit(b"\n", 1)[-1])
    assert error["status"] == status and words in error["error"], error
    seq = publish(node_url, "bystander", "still here")
    assert json.loads(good.lines(1)[0])["seq"] == seq
    good.sock.close()


def test_slow_tcp_consumer_is_dropped_and_others_get_everything():
    with NodeServerProcess("tcp", args=["--queue-limit", "20", "--slow-grace", "0.5"]) as server:
        stalled = tcp_connect(server.url, encode_subscribe("slow"), rcvbuf=4096)
        good = subscribe(server.url, "slow")
        good.line()
        got: list[int] = []
        reader = threading.Thread(target=lambda: got.extend(
            json.loads(line)["seq"] for line in good.lines(200)))
        reader.start()
        for i in range(200):
            publish(server.url, "slow", f"{i}:" + "x" * 20_000)
        reader.join(scaled(20))
        assert got == list(range(1, 201))
        with urllib.request.urlopen(server.url + "/metrics", timeout=scaled(5)) as response:
            assert 'duplexbench_slow_consumer_drops_total{transport="tcp"} 1' in response.read().decode()
        stalled.close()
        good.sock.close()


def test_sigterm_flushes_then_closes():
    server = NodeServerProcess("tcp").start()
    try:
        readers = [subscribe(server.url, "bye") for _ in range(3)]
        for reader in readers:
            reader.line()
        for i in range(50):
            publish(server.url, "bye", f"{i}:" + "z" * 1000)
        server.process.send_signal(signal.SIGTERM)
        for reader in readers:
            rest = reader.until_closed()
            assert [json.loads(line)["seq"] for line in rest.split(b"\n") if line.strip()] == list(range(1, 51))
            reader.sock.close()
        started = time.monotonic()
        assert server.process.wait(scaled(10)) == 0
        assert time.monotonic() - started < 2.5
    finally:
        server.stop()


@pytest.mark.parametrize("pattern,upstream", [("fanout", "post"), ("fanout", "transport"),
                                              ("echo", "transport")])
def test_loadgen_loses_nothing(node_url, tmp_path, pattern, upstream):
    spec = LoadSpec(transport="tcp", sub_url=node_url, clients=10, rate=60.0, pattern=pattern,
                    upstream=upstream, warmup_s=0.3, duration_s=1.0, drain_s=3.0,
                    topic_prefix=f"lg-tcp-{pattern}-{upstream}-{time.monotonic_ns()}")
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec.to_json())
    proc = subprocess.run([sys.executable, "-m", "clients.loadgen", str(spec_path), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=scaled(60))
    assert proc.returncode == 0, proc.stderr[-2000:]
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    assert counters["complete"] and counters["errors"] == 0, counters["error_messages"]
    assert counters["lost"] == 0 and counters["duplicated"] == 0 and counters["reordered"] == 0
    assert counters["delivered"] == counters["expected"] > 0
    if pattern == "fanout":  # every delivery: the envelope and its newline, as TCP_INFO counts
        per_msg = counters["wire"]["sub"]["bytes_down"] / counters["delivered"]
        assert abs(per_msg - (counters["message_bytes"] + 1)) < 1e-6, per_msg
