"""The floor reader (tools/floor/floor.c) against a real server, and floorbench end to end.

The floor is only an anchor if it reads what the native engine reads: every
transport's subscription accepted, every published message counted once per
subscriber (long polling: the re-poll resumes from the last seq, so nothing
is missed or read twice), and the one command's rows add up.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from duplexbench.benchmarks import floor as floorbench

SUBSCRIBERS = 3
MESSAGES = 7


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    return floorbench.build_floor(tmp_path_factory.mktemp("floor"))


def _publish(url: str, topic: str, text: str) -> None:
    request = urllib.request.Request(f"{url}/publish?topic={topic}", data=text.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


@pytest.mark.parametrize("mode", ["sse", "ndjson", "ws", "longpoll"])
def test_floor_reader_counts_every_delivery(binary, server, mode):
    host, port = server.url.split("//")[1].split(":")
    topic = f"floor-{mode}"
    reader = subprocess.Popen([str(binary), host, port, topic, str(SUBSCRIBERS), "20", mode],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        if mode == "longpoll":
            time.sleep(0.2)  # the polls are held by the server
        for i in range(MESSAGES):
            _publish(server.url, topic, f"{i}:hello")
            if i == 3:  # a burst: long polls then answer several messages at once
                for j in range(3):
                    _publish(server.url, topic, f"burst-{j}")
        time.sleep(0.3)
        reader.send_signal(signal.SIGTERM)
        out, err = reader.communicate(timeout=5)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    counts = json.loads(out.strip().splitlines()[-1])
    assert reader.returncode == 0, err
    assert counts["deliveries"] == SUBSCRIBERS * (MESSAGES + 3)
    assert counts["errors"] == 0
    if mode == "longpoll":
        # One poll per answer plus the one still held; a burst may be one answer.
        assert SUBSCRIBERS * 2 <= counts["polls"] <= SUBSCRIBERS * (MESSAGES + 3 + 1)


def test_floor_reader_refuses_a_bad_subscription(binary, server):
    host, port = server.url.split("//")[1].split(":")
    done = subprocess.run([str(binary), host, port, "bad topic!", "1", "2", "sse"],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 1
    assert "not accepted" in done.stderr and "400" in done.stderr


def test_build_without_a_compiler_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(floorbench.shutil, "which", lambda name: None)
    with pytest.raises(floorbench.FloorError, match="apt-get install gcc"):
        floorbench.build_floor(tmp_path)


def test_floorbench_one_command(tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text('name = "tiny"\ntransports = ["longpoll", "websocket"]\nclients = [3]\n'
                        'rate = [40]\npayload_bytes = [64]\nwarmup_s = 0.5\nduration_s = 1.0\n'
                        'drain_s = 0.5\n')
    out = tmp_path / "out"
    code = floorbench.main(["--scenario", str(scenario), "--repeats", "1", "--duration", "1",
                            "--out", str(out)])
    assert code == 0
    result = json.loads((out / "floor.json").read_text())
    rows = result["rows"]
    assert {(r["transport"], r["client"]) for r in rows} == {
        (t, c) for t in ("longpoll", "websocket") for c in ("floor", "native")}
    for r in rows:
        assert r["lost"] == 0 and r["errors"] == 0
        assert r["measured_messages"] == 40
        assert r["server_cpu_s"] > 0 and r["client_cpu_s"] > 0 and r["publisher_cpu_s"] > 0
    floor_ws = next(r for r in rows if r["client"] == "floor" and r["transport"] == "websocket")
    assert floor_ws["deliveries"] == 3 * 60  # warm-up and measured messages, every subscriber
    assert [s["transport"] for s in result["summary"]] == ["longpoll", "websocket"]
    # Long polling's floor re-polls at once (no gap); the streams' floor reads per 2 ms.
    assert result["gap_us"] == {"longpoll": 0, "websocket": floorbench.GAP_US}
    assert {r["transport"]: r["gap_us"] for r in rows if r["client"] == "floor"} == \
        result["gap_us"]
    text = (out / "floor.md").read_text()
    assert "native ÷ floor" in text and "a rerun of 1 repeats agrees" in text
    assert result["verdict"]["all_within_target"] in (True, False)
    assert 0 <= result["verdict"]["rerun_agrees_estimate"] <= 1
    assert {s["transport"]: s["repeats_within_target"] for s in result["summary"]}.keys() == \
        {"longpoll", "websocket"}
