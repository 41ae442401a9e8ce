"""The long-polling path as profiled for issue 15, on a real server: held polls share
one answer per publish, time out in buckets (a 204 never early, at most a grain
late), and every answer keeps the contract (200 batch, 204, 410 gone / reset, 400,
403, Duplexbench-Epoch, Cache-Control). Also the GC policy's /metrics counters."""

from __future__ import annotations

import json
import threading
import time

import pytest
from _srv_helpers import http, metric, publish, wait_metric
from _timeouts import scaled

from duplexbench.procs.server import ServerProcess
from servers.hub import POLL_TIMEOUT_GRAIN_S

ALLOWED = "http://page.example:3000"


@pytest.fixture(scope="module")
def srv():
    with ServerProcess("longpoll", args=["--retention", "3", "--allow-origin", ALLOWED]) as server:
        yield server


@pytest.fixture(scope="module")
def epoch(srv):
    return json.loads(http(srv.url + "/healthz")[2])["epoch"]


def _held(url: str, out: list, index: int) -> None:
    out[index] = http(url, timeout=10)


def test_held_polls_all_get_the_one_batch_of_a_publish(srv, epoch):
    topic, n = "held", 20
    answers: list = [None] * n
    threads = [threading.Thread(target=_held, args=(f"{srv.url}/poll?topic={topic}&timeout=10",
                                                    answers, i)) for i in range(n)]
    for thread in threads:
        thread.start()
    wait_metric(srv.url, "connections_open", "longpoll", n)
    seq = publish(srv.url, topic, "one")
    for thread in threads:
        thread.join(scaled(10))
    bodies = {a[2] for a in answers}
    assert len(bodies) == 1, "held polls of one topic got different answers"
    for status, headers, _ in answers:
        assert status == 200
        assert headers["Cache-Control"] == "no-cache" and headers["Duplexbench-Epoch"] == epoch
        assert headers["Content-Type"].startswith("application/json")
    (body,) = bodies
    assert [m["seq"] for m in json.loads(body)] == [seq]
    assert json.loads(body)[0]["data"] == "one"


@pytest.mark.parametrize("timeout", [0.05, 0.3])
def test_a_held_poll_times_out_204_never_early(srv, epoch, timeout):
    started = time.monotonic()
    status, headers, body = http(f"{srv.url}/poll?topic=quiet&timeout={timeout}")
    took = time.monotonic() - started
    assert status == 204 and body == b""
    assert headers["Cache-Control"] == "no-cache" and headers["Duplexbench-Epoch"] == epoch
    assert took >= timeout, f"204 after {took:.3f} s, asked to hold {timeout} s"
    assert took < timeout + POLL_TIMEOUT_GRAIN_S + scaled(0.5)


def test_batches_in_order_after_a_cursor(srv, epoch):
    topic = "order"
    seqs = [publish(srv.url, topic, f"m{i}") for i in range(3)]
    status, _, body = http(f"{srv.url}/poll?topic={topic}&cursor={epoch}-{seqs[0]}")
    assert status == 200
    got = json.loads(body)
    assert [m["seq"] for m in got] == seqs[1:] and [m["data"] for m in got] == ["m1", "m2"]
    status, _, body = http(f"{srv.url}/poll?topic={topic}&cursor={epoch}-{seqs[0]}&max=1")
    assert status == 200 and [m["seq"] for m in json.loads(body)] == seqs[1:2]


def test_410_too_old_and_reset(srv, epoch):
    topic = "gone"
    for i in range(6):  # retention is 3: seqs 1-3 are gone
        publish(srv.url, topic, f"g{i}")
    status, headers, body = http(f"{srv.url}/poll?topic={topic}&cursor={epoch}-1")
    assert status == 410 and headers["Duplexbench-Epoch"] == epoch
    gone = json.loads(body)
    assert gone["oldest_seq"] == 4 and gone["cursor"] == f"{epoch}-3" and gone["epoch"] == epoch
    status, headers, body = http(f"{srv.url}/poll?topic={topic}&cursor=otherepoch-2")
    reset = json.loads(body)
    assert status == 410 and reset["event"] == "reset" and reset["cursor"] == f"{epoch}-3"
    assert headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("query,word", [
    ("topic=bad%20topic", "topic"), ("", "topic"), ("topic=t&cursor=x-y-z", "cursor"),
    ("topic=t&timeout=-1", "timeout"), ("topic=t&max=0", "max"), ("topic=t&cursor=999", "999"),
])
def test_bad_parameters_are_400_with_a_reason(srv, epoch, query, word):
    status, headers, body = http(f"{srv.url}/poll?{query}")
    assert status == 400 and word in json.loads(body)["error"]
    assert headers["Cache-Control"] == "no-cache" and headers["Duplexbench-Epoch"] == epoch


def test_origin_policy_on_poll(srv):
    status, _, body = http(f"{srv.url}/poll?topic=o&timeout=0",
                           headers={"Origin": "http://evil.example"})
    assert status == 403 and "origin" in json.loads(body)["error"]
    status, headers, _ = http(f"{srv.url}/poll?topic=o&timeout=0", headers={"Origin": ALLOWED})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Duplexbench-Epoch" in headers["Access-Control-Expose-Headers"]


def test_gc_counters_in_metrics(srv):
    for generation in range(3):
        _, _, body = http(srv.url + "/metrics")
        text = body.decode()
        for name in ("gc_collections_total", "gc_seconds_total", "gc_collected_total"):
            assert f'duplexbench_{name}{{generation="{generation}"}} ' in text


def test_gc_python_policy_is_accepted():
    with ServerProcess("longpoll", args=["--gc", "python"]) as server:
        assert http(f"{server.url}/poll?topic=p&timeout=0")[0] == 204
        assert metric(server.url, "http_requests_total", "longpoll") == 1
