"""The plain-TCP client (clients/tcp.py) and whole load points over tcp.

The subscriber on its own (on_message path): order, publishing up its socket,
resume after a dropped connection, the reset and a new TCP port after a restart.
Then ``python -m clients.loadgen`` for transport tcp: fanout with POSTs (every
delivery costs exactly its envelope + 1 byte, as the kernel counts it), fanout
and echo with publish lines up the transport, and a server restart mid-point.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import pytest

from _timeouts import scaled
from clients.spec import LoadSpec, SpecError
from clients.tcp import TcpSubscriber, discover_tcp_port
from duplexbench.procs.server import ServerProcess

from test_clients_loadgen import check_complete_run, finish, loadgen, point


@pytest.fixture(scope="module")
def server():
    with ServerProcess("tcp", args=["--heartbeat", "1"]) as srv:
        yield srv


def _post(base: str, topic: str, data: str) -> int:
    import urllib.request

    request = urllib.request.Request(f"{base}/publish?topic={topic}", data=data.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=scaled(5)) as response:
        return json.loads(response.read())["seq"]


async def _until(got: list, count: int) -> None:
    async with asyncio.timeout(scaled(5)):
        while len(got) < count:
            await asyncio.sleep(0.01)


def test_subscriber_receives_publishes_and_resumes(server):
    async def run():
        got, errors = [], []
        sub = TcpSubscriber(server.url, "c1", lambda env, ns: got.append(env), on_error=errors.append)
        await sub.start()
        assert sub.epoch == json.loads(_healthz(server.url))["epoch"] and sub.nodelay
        await asyncio.to_thread(_post, server.url, "c1", "posted")
        await sub.publish("up the socket", 42)
        await _until(got, 2)
        sub.drop_connection()  # as a network failure would
        await asyncio.sleep(0.05)
        await asyncio.to_thread(_post, server.url, "c1", "while down")
        await _until(got, 3)
        await sub.close()
        return got, sub, errors

    got, sub, errors = asyncio.run(run())
    assert [(e.seq, e.data) for e in got] == [(1, "posted"), (2, "up the socket"), (3, "while down")]
    assert got[1].ts == 42 and sub.cursor == 3
    assert sub.stats.reconnects == 1 and sub.stats.connections == 2
    assert any("resuming from seq 2" in e for e in errors), errors


def test_a_reset_and_its_backlog_in_one_read_resume_after_the_backlog(server):
    """The reset line and the new instance's retained messages come in one write: the
    client handles the reset before it reads on (fed first, the backlog looked like the
    old epoch's: tcp lost the first second after a restart)."""
    async def run():
        for i in range(3):
            await asyncio.to_thread(_post, server.url, "bk", f"m{i}")
        got, errors = [], []
        sub = TcpSubscriber(server.url, "bk", lambda env, ns: got.append(env), cursor=7,
                            on_error=errors.append)
        sub.epoch = "gone"  # a cursor of an instance that no longer runs
        await sub.start()
        await _until(got, 3)
        await sub.close()
        return got, sub, errors

    got, sub, errors = asyncio.run(run())
    assert [(e.seq, e.data) for e in got] == [(1, "m0"), (2, "m1"), (3, "m2")]
    assert sub.cursor == 3 and sub.epoch != "gone", (sub.cursor, sub.epoch)
    assert any("continuing at 0" in e for e in errors), errors


def _healthz(base: str) -> str:
    import urllib.request

    with urllib.request.urlopen(base + "/healthz", timeout=scaled(5)) as response:
        return response.read().decode()


def test_refused_subscription_and_missing_listener_are_clear_errors(server, start_server):
    async def run(url, topic):
        sub = TcpSubscriber(url, topic, lambda env, ns: None)
        try:
            await sub.start()
        finally:
            await sub.close()

    from clients.base import ClientError

    with pytest.raises(ClientError, match="400 bad topic"):
        asyncio.run(run(server.url, "bad topic"))
    ws_only = start_server("websocket")
    with pytest.raises(ClientError, match="names no tcp_port"):
        asyncio.run(discover_tcp_port(ws_only.url))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_restart_gives_a_reset_and_the_client_finds_the_new_tcp_port():
    port = _free_port()
    a = ServerProcess("tcp", port=port).start()
    try:
        async def run():
            nonlocal a
            got, errors = [], []
            sub = TcpSubscriber(a.url, "rs", lambda env, ns: got.append(env), on_error=errors.append,
                                backoff=(0.05, 0.2))
            await sub.start()
            old_epoch = sub.epoch
            for i in range(2):
                await asyncio.to_thread(_post, a.url, "rs", f"a{i}")
            await _until(got, 2)
            await asyncio.to_thread(a.stop)
            a = await asyncio.to_thread(ServerProcess("tcp", port=port).start)
            new_epoch = json.loads(await asyncio.to_thread(_healthz, a.url))["epoch"]
            async with asyncio.timeout(scaled(10)):
                while sub.epoch != new_epoch:  # reconnected (on the new port) and reset
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(_post, a.url, "rs", "b0")
            await _until(got, 3)
            await sub.close()
            health = json.loads(await asyncio.to_thread(_healthz, a.url))
            return got, errors, old_epoch, sub, health

        got, errors, old_epoch, sub, health = asyncio.run(run())
    finally:
        a.stop()
    assert old_epoch != health["epoch"] == sub.epoch
    assert sub.tcp_port == health["tcp_port"]  # asked /healthz again after the failed connect
    assert [(e.seq, e.data) for e in got] == [(1, "a0"), (2, "a1"), (1, "b0")]
    assert any("server restarted" in e and "continuing at 0" in e for e in errors), errors


# -- whole load points ---------------------------------------------------------------------------


def test_fanout_point_costs_the_envelope_and_a_newline(server, tmp_path):
    spec = point("tcp", server.url, clients=3, payload_bytes=32)
    code, events, err = finish(loadgen(spec, tmp_path))
    counters, _ = check_complete_run(tmp_path, code, events, err)
    assert counters["expected"] == 90 * 3 and counters["wire"]["pub"]["http_requests"] == 90
    sub = counters["wire"]["sub"]
    assert sub["http_requests"] == 0 and sub["connections"] == 0  # opened before the window
    per_msg = sub["bytes_down"] / counters["delivered"]
    assert abs(per_msg - (counters["message_bytes"] + 1)) < 1e-6, per_msg  # "\n" and nothing else
    assert sub["bytes_up"] == 0  # the subscribe line was sent before the window


@pytest.mark.parametrize("pattern", ["fanout", "echo"])
def test_publish_lines_up_the_transport(server, tmp_path, pattern):
    spec = point("tcp", server.url, pattern=pattern, upstream="transport")
    code, events, err = finish(loadgen(spec, tmp_path))
    counters, _ = check_complete_run(tmp_path, code, events, err)
    if pattern == "echo":  # up the subscribers' own sockets
        assert counters["messages_up_on_sub"] == counters["published"]
        per_line = counters["wire"]["sub"]["bytes_up"] / counters["published"]
        assert abs(per_line - (counters["message_bytes_up"] + 1)) < 1e-6, per_line
    else:  # publish-only TCP connections of the publisher process, no POST
        assert counters["messages_up_on_sub"] == 0 and counters["wire"]["pub"]["http_requests"] == 0
        assert counters["wire"]["pub"]["bytes_up"] >= counters["published"] * counters["message_bytes_up"]


def test_server_restart_mid_point_counts_the_gap_and_recovers(tmp_path):
    port = _free_port()
    srv = ServerProcess("tcp", port=port, args=["--heartbeat", "1"]).start()
    try:
        spec = point("tcp", srv.url, clients=3, rate=50.0, warmup_s=0.3, duration_s=3.0,
                     drain_s=1.0, drain_max_s=1.0, reconnect_min_s=0.05, reconnect_max_s=0.2)
        proc = loadgen(spec, tmp_path)
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line).get("phase") == "measure":
                break
        time.sleep(1.0)
        srv.stop()
        srv = ServerProcess("tcp", port=port, args=["--heartbeat", "1"]).start()  # a new TCP port
        code, _, err = finish(proc)
    finally:
        srv.stop()
    assert code == 0, err
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    recovery = counters["recovery"]
    assert recovery is not None and recovery["disconnects"] >= 3 and recovery["unrecovered"] == 0
    assert recovery["resets"] >= 3 and 0 < recovery["recovery_s_max"] < 5
    assert counters["delivered"] + counters["lost"] == counters["expected"]
    assert counters["delivered"] > 0


def test_spec_accepts_tcp():
    spec = LoadSpec(transport="tcp", sub_url="http://127.0.0.1:1", upstream="transport")
    assert spec.transport_upstream and not spec.ws_upstream
    done = subprocess.run([sys.executable, "-c", "from clients.point import SUBSCRIBERS, DELIMITERS;"
                           "print(SUBSCRIBERS['tcp'].__name__, DELIMITERS['tcp'])"],
                          capture_output=True, text=True, timeout=scaled(20))
    assert done.stdout.split() == ["TcpSubscriber", "b'\\n'"], done.stderr


def test_spec_sub_tcp_names_a_path_in_front_of_the_listener():
    spec = LoadSpec(transport="tcp", sub_url="http://127.0.0.1:1", sub_tcp="127.0.0.1:9001")
    assert spec.sub_tcp_address == ("127.0.0.1", 9001)
    assert LoadSpec(transport="tcp", sub_url="http://127.0.0.1:1").sub_tcp_address is None
    with pytest.raises(SpecError, match="expected HOST:PORT"):
        LoadSpec(transport="tcp", sub_url="http://127.0.0.1:1", sub_tcp="nowhere")
    with pytest.raises(SpecError, match="plain-TCP subscribers"):
        LoadSpec(transport="websocket", sub_url="http://127.0.0.1:1", sub_tcp="127.0.0.1:9001")
