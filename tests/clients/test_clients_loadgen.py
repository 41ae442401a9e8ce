"""``python -m clients.loadgen SPEC.json OUT_DIR`` end to end, against a real server.

Short points (about 2 s of load, few clients) per transport and pattern: both
files written, every expected message delivered; SIGTERM mid-run leaves
counters with ``complete: false``; a bad spec fails with a clear message.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

import pandas as pd
import pytest

from clients.output import SAMPLE_COLUMNS
from clients.spec import LoadSpec
from duplexbench.netem.link import LinkConfig
from duplexbench.netem.process import ProxyProcess
from duplexbench.procs.server import ServerProcess

SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))


@pytest.fixture(scope="module")
def server_url():
    with ServerProcess("all", args=["--heartbeat", "1"]) as server:
        yield server.url


def loadgen(spec: LoadSpec, tmp_path) -> subprocess.Popen:
    spec_path = tmp_path / "SPEC.json"
    spec_path.write_text(spec.to_json())
    return subprocess.Popen(
        [sys.executable, "-m", "clients.loadgen", str(spec_path), str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, list[dict], str]:
    try:
        out, err = proc.communicate(timeout=timeout * SCALE)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"load generator did not finish:\n{err}")
    return proc.returncode, [json.loads(line) for line in out.splitlines() if line], err


def point(transport: str, url: str, **kw) -> LoadSpec:
    values = {"transport": transport, "sub_url": url, "clients": 3, "rate": 90.0,
              "warmup_s": 0.3, "duration_s": 1.0, "drain_s": 3.0,
              "topic_prefix": f"lg-{transport}-{time.monotonic_ns()}", **kw}
    return LoadSpec(**values)


def check_complete_run(tmp_path, code, events, err) -> tuple[dict, pd.DataFrame]:
    assert code == 0, err
    kinds = [e["event"] for e in events]
    assert kinds[0] == "ready" and kinds[-1] == "done" and "progress" in kinds
    assert [e["phase"] for e in events if e["event"] == "phase"] == ["warmup", "measure", "drain"]
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    samples = pd.read_parquet(tmp_path / "out" / "samples.parquet")
    assert counters["complete"] is True and counters["clock"] == "CLOCK_MONOTONIC"
    assert counters["published"] == 90 and counters["publish_failed"] == 0  # 90/s x 1 s
    assert counters["lost"] == 0 and counters["duplicated"] == 0 and counters["reordered"] == 0
    assert counters["delivered"] == counters["expected"] > 0
    assert counters["errors"] == 0, counters["error_messages"]
    assert list(samples.columns) == list(SAMPLE_COLUMNS)
    assert len(samples) == counters["delivered"]
    assert (samples["intended_ns"] >= counters["measure_start_ns"]).all()
    assert (samples["intended_ns"] < counters["measure_end_ns"]).all()
    assert (samples["sent_ns"] >= samples["intended_ns"]).all()  # open loop: never early
    assert (samples["recv_ns"] > samples["sent_ns"]).all()
    assert counters["bytes_window"] == "measure" and counters["tcp_nodelay"] is True
    assert counters["wire"]["sub"]["bytes_down"] > counters["delivered"] * counters["message_bytes"]
    return counters, samples


@pytest.mark.parametrize("transport", ["longpoll", "sse", "ndjson", "websocket"])
def test_fanout_point_per_transport(server_url, tmp_path, transport):
    code, events, err = finish(loadgen(point(transport, server_url), tmp_path))
    counters, _ = check_complete_run(tmp_path, code, events, err)
    assert counters["expected"] == 90 * 3
    assert counters["wire"]["pub"]["http_requests"] == 90
    assert counters["messages_up_on_sub"] == 0
    if transport == "longpoll":
        assert counters["wire"]["sub"]["http_requests"] >= 90  # a poll (at least) per batch


def test_websocket_echo_publishes_on_the_subscriber_socket(server_url, tmp_path):
    spec = point("websocket", server_url, pattern="echo", upstream="transport", arrival="poisson")
    code, events, err = finish(loadgen(spec, tmp_path))
    assert code == 0, err
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    assert counters["lost"] == 0 and counters["delivered"] == counters["expected"] > 0
    assert counters["messages_up_on_sub"] == counters["published"]
    assert counters["wire"]["sub"]["bytes_up"] > counters["published"] * counters["message_bytes"] / 2
    assert counters["wire_point"]["pub"] == {k: 0 for k in counters["wire_point"]["pub"]}


@pytest.mark.exclusive  # judges figures a test beside it would move (tests/conftest.py)
def test_chat_over_long_polling_without_keepalive(server_url, tmp_path):
    spec = point("longpoll", server_url, pattern="chat", clients=4, topics=2, keepalive=False)
    code, events, err = finish(loadgen(spec, tmp_path))
    counters, _ = check_complete_run(tmp_path, code, events, err)
    assert counters["expected"] == 90 * 2  # every message reaches the 2 clients of its room
    # Connection: close on every poll: one TCP connection per request.
    sub = counters["wire"]["sub"]
    assert sub["connections"] == sub["http_requests"] > 0


def test_sigterm_writes_incomplete_counters(server_url, tmp_path):
    proc = loadgen(point("websocket", server_url, duration_s=30.0), tmp_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20 * SCALE
    for line in proc.stdout:  # wait until the measurement is under way
        if json.loads(line).get("phase") == "measure" or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # supervisors often signal twice (process, then group)
    code, events, err = finish(proc, timeout=15)
    assert code == 128 + signal.SIGTERM, err
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    assert counters["complete"] is False and "SIGTERM" in counters["reason"]
    assert counters["delivered"] > 0
    assert events[-1]["event"] == "done" and events[-1]["complete"] is False
    assert (tmp_path / "out" / "samples.parquet").exists()


def test_bad_spec_fails_with_a_clear_message(tmp_path):
    path = tmp_path / "SPEC.json"
    path.write_text('{"transport": "carrier-pigeon", "sub_url": "http://127.0.0.1:1"}')
    proc = subprocess.run([sys.executable, "-m", "clients.loadgen", str(path), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=30 * SCALE)
    assert proc.returncode == 2
    assert "transport: expected one of" in proc.stderr


def test_unreachable_server_fails_and_says_where(tmp_path):
    spec = LoadSpec(transport="sse", sub_url="http://127.0.0.1:9", clients=1, duration_s=1)
    code, events, err = finish(loadgen(spec, tmp_path))
    assert code == 1
    assert "127.0.0.1:9" in err
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    assert counters["complete"] is False


def test_raise_nofile_limit():
    import resource

    from clients.process import raise_nofile_limit

    soft = raise_nofile_limit()
    now_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == now_soft
    assert hard == resource.RLIM_INFINITY or now_soft == hard


@pytest.mark.parametrize("delay_ms", [0, 20])
def test_websocket_byte_window_holds_the_measured_messages_only(server_url, tmp_path, delay_ms):
    """At 1,000 msg/s (and behind a 20 ms one-way delay: ~20 messages per subscriber on
    their way) warm-up messages are still in flight when the warm-up ends; the window
    must open only once they are delivered, so every measured delivery costs exactly
    its envelope + a 2-byte server frame header (envelope < 126 B), nothing more."""
    with contextlib.ExitStack() as stack:
        url = server_url
        if delay_ms:
            target = urllib.parse.urlsplit(server_url)
            proxy = stack.enter_context(ProxyProcess(
                LinkConfig(delay_ms=delay_ms), (target.hostname, target.port), realtime=False))
            url = f"http://{proxy.address[0]}:{proxy.address[1]}"
        spec = point("websocket", url, pub_url=server_url, clients=5, rate=1000.0, payload_bytes=16,
                     warmup_s=0.3, duration_s=1.0,
                     topic_prefix=f"bw{time.monotonic_ns() % 10**6}")
        code, _, err = finish(loadgen(spec, tmp_path))
    assert code == 0, err
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    assert counters["lost"] == 0 and counters["errors"] == 0, counters["error_messages"]
    assert counters["delivered"] == counters["expected"] == 5 * 1000
    assert counters["bytes_window_note"] is None
    assert counters["message_bytes_max"] < 126  # one header size: 2 bytes
    per_msg = counters["wire"]["sub"]["bytes_down"] / counters["delivered"]
    overhead = per_msg - counters["message_bytes"]
    # Only amortised pings / closes may add to the 2-byte header.
    assert 2.0 - 1e-3 <= overhead <= 2.5, (overhead, counters["warmup_pause_ms"])
    # The pause moved the measured schedule: samples still lie inside the window.
    samples = pd.read_parquet(tmp_path / "out" / "samples.parquet")
    assert (samples["intended_ns"] >= counters["measure_start_ns"]).all()
    assert (samples["intended_ns"] < counters["measure_end_ns"]).all()
    assert (samples["sent_ns"] >= samples["intended_ns"]).all()


def test_message_bytes_up_is_the_publish_frame_or_the_post_body(server_url, tmp_path):
    """WebSocket echo publishes {"ts":..,"data":..} frames up the subscriber socket, not
    envelopes: message_bytes_up is that frame's payload; a POST's is the payload itself."""
    ws = point("websocket", server_url, pattern="echo", upstream="transport", payload_bytes=40)
    (tmp_path / "ws").mkdir()
    code, _, err = finish(loadgen(ws, tmp_path / "ws"))
    assert code == 0, err
    counters = json.loads((tmp_path / "ws" / "out" / "counters.json").read_text())
    up = counters["message_bytes_up"]
    assert 40 + len('{"ts":,"data":""}') + 10 <= up <= 40 + len('{"ts":,"data":""}') + 20
    assert up < counters["message_bytes"]  # no seq, no topic
    sub = counters["wire"]["sub"]
    # Each publish frame: payload + 6 bytes of masked client header (< 126 B).
    per_frame = sub["bytes_up"] / counters["messages_up_on_sub"] - up
    assert 6.0 - 1e-3 <= per_frame <= 6.5, per_frame
    post = point("sse", server_url, payload_bytes=40)
    (tmp_path / "sse").mkdir()
    code, _, err = finish(loadgen(post, tmp_path / "sse"))
    assert code == 0, err
    counters = json.loads((tmp_path / "sse" / "out" / "counters.json").read_text())
    assert counters["message_bytes_up"] == 40.0


@pytest.mark.exclusive  # judges figures a test beside it would move (tests/conftest.py)
def test_late_is_not_lost(server_url, tmp_path):
    """Behind a 600 ms one-way delay with the drain bound capped at 0.3 s, the
    messages of the window's last ~0.3 s arrive after the bound: they are counted
    as late (and delivered), never as lost, because the drain keeps listening."""
    target = urllib.parse.urlsplit(server_url)
    with ProxyProcess(LinkConfig(delay_ms=600), (target.hostname, target.port),
                      realtime=False) as proxy:
        url = f"http://{proxy.address[0]}:{proxy.address[1]}"
        spec = point("sse", url, pub_url=server_url, clients=2, rate=50.0, warmup_s=0.0,
                     duration_s=1.0, drain_s=2.0, drain_max_s=0.3)
        code, _, err = finish(loadgen(spec, tmp_path))
    assert code == 0, err
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    assert counters["drain_bound_s"] == 0.3
    assert counters["lost"] == 0 and counters["delivered"] == counters["expected"] == 100
    assert 0 < counters["late"] < counters["delivered"]
    # Late = received after the bound, which starts at the window's end.
    samples = pd.read_parquet(tmp_path / "out" / "samples.parquet")
    after = samples["recv_ns"] > counters["measure_end_ns"] + 0.3e9
    assert int(after.sum()) == counters["late"]


def test_drain_bound_and_late_arithmetic():
    """The bound: max(1 s, 4 x p99), capped by drain_max_s; the drain listens past it."""
    import numpy as np

    from clients.core import count_late, drain_bound_s, listen_s
    assert drain_bound_s(np.array([], dtype=np.int64), 10.0) == 1.0
    assert drain_bound_s(np.full(100, 500_000_000), 10.0) == 2.0  # 4 x p99
    assert drain_bound_s(np.full(100, 5_000_000_000), 10.0) == 10.0  # capped
    assert listen_s(1.0, 0.5, 10.0) == 2.0 and listen_s(1.0, 5.0, 10.0) == 5.0
    assert count_late(np.array([1, 5, 9]), 5) == 1


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_two_shard_processes_deliver_what_one_does(server_url, tmp_path, transport):
    """loadgen_procs = 2: same files, same delivered counts as one process, nothing lost,
    and every process (conductor, publisher, 2 shards) named in counters.procs."""
    results = {}
    for procs in (1, 2):
        (tmp_path / str(procs)).mkdir()
        spec = point(transport, server_url, clients=6, loadgen_procs=procs,
                     topic_prefix=f"sh{procs}-{time.monotonic_ns() % 10**6}")
        code, events, err = finish(loadgen(spec, tmp_path / str(procs)))
        results[procs] = check_complete_run(tmp_path / str(procs), code, events, err)
    (one, _), (two, two_samples) = results[1], results[2]
    assert two["delivered"] == one["delivered"] == 6 * 90 and two["lost"] == 0
    assert len(two["procs"]) == 4 and len(set(two["procs"])) == 4
    assert sorted(two_samples["subscriber"].unique()) == list(range(6))
    assert two["wire"]["sub"]["bytes_down"] > 0
    # Each shard reads TCP_INFO at the window edges in its own process, so an edge may
    # catch a message in flight: seen twice as 2 of 90 messages per subscriber (2.04 %).
    # 5 % still fails for a shard whose bytes are missing or counted twice (50 %).
    assert abs(two["wire"]["sub"]["bytes_down"] - one["wire"]["sub"]["bytes_down"]) \
        < 0.05 * one["wire"]["sub"]["bytes_down"]


def test_server_restart_mid_point_counts_the_gap_and_recovers(tmp_path):
    """Contract v2 across a restart: the subscribers resume with E-N cursors, get the
    reset object from the new instance (another epoch), continue; the messages they
    missed are lost (not hidden) and ``recovery`` says how long it took."""
    import socket as socketlib

    with socketlib.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ServerProcess("all", port=port, args=["--heartbeat", "1"]).start()
    try:
        spec = point("websocket", server.url, clients=3, rate=50.0, warmup_s=0.3, duration_s=3.0,
                     drain_s=1.0, drain_max_s=1.0, reconnect_min_s=0.05, reconnect_max_s=0.2)
        proc = loadgen(spec, tmp_path)
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line).get("phase") == "measure":
                break
        time.sleep(1.0)
        server.stop()
        server = ServerProcess("all", port=port, args=["--heartbeat", "1"]).start()
        code, _, err = finish(proc)
    finally:
        server.stop()
    assert code == 0, err
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    recovery = counters["recovery"]
    assert recovery is not None and recovery["disconnects"] >= 3 and recovery["unrecovered"] == 0
    assert 0 < recovery["recovery_s_max"] < 5
    # Publishes failed while the server was down are not losses; nothing is hidden either.
    assert counters["delivered"] + counters["lost"] == counters["expected"]
    assert counters["delivered"] > 0


@pytest.mark.parametrize("transport", ["longpoll", "websocket"])
def test_subscribers_bind_to_the_source_addresses(server_url, tmp_path, transport):
    """source_addrs: subscribers bind round-robin to further loopback addresses (beyond
    ~28k connections per source address); the point runs the same."""
    spec = point(transport, server_url, clients=4, source_addrs=["127.0.0.2", "127.0.0.3"])
    code, events, err = finish(loadgen(spec, tmp_path))
    counters, _ = check_complete_run(tmp_path, code, events, err)
    assert counters["spec"]["source_addrs"] == ["127.0.0.2", "127.0.0.3"]
