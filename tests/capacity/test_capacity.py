"""The capacity search, on a simulated machine: no processes, exact answers."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from duplexbench.capacity import bracket, judge
from duplexbench.capacity.search import search
from duplexbench.commands import capacity as capacity_command
from duplexbench.runner.outcome import PointResult
from duplexbench.scenario import LoadPoint


class FakeConsole:
    def info(self, text: str) -> None:
        pass


class FakeSession:
    """Sustains any publish rate up to ``knee``; above it p99 explodes (or messages are lost)."""

    def __init__(self, knee: float, failure: str = "latency", loadgen_pct: float = 40.0,
                 server_pct: float = 50.0, flaky: set | None = None) -> None:
        self.knee, self.failure, self.loadgen_pct = knee, failure, loadgen_pct
        self.server_pct = server_pct
        #: Rates that pass their first run and fail the next (a lucky step at the knee).
        self.flaky = set(flaky or ())
        self.console = FakeConsole()
        self.rates: list[float] = []
        self.run_dir = Path("/nonexistent/duplexbench-fake-run")

    def run_point(self, point: LoadPoint, number: int, total: int) -> PointResult:
        over = point.rate > self.knee or (point.rate in self.flaky and point.rate in self.rates)
        self.rates.append(point.rate)
        row = {"status": "ok", "lost": 0, "lat_p99_ms": 5.0,
               "throughput_msgs_s": point.rate * point.clients,
               "server_cpu_pct": self.server_pct if over else 50.0,
               "client_cpu_pct": self.loadgen_pct}
        if over and self.failure == "latency":
            row["lat_p99_ms"] = 500.0
        elif over and self.failure == "loss":
            row.update(status="lost", lost=7)
        elif over and self.failure == "crash":
            return PointResult(point, {"status": "failed"}, measured=False, reason="boom\ntail")
        return PointResult(point, row, measured=True)


def args(**changes) -> argparse.Namespace:
    ns = capacity_command.build_parser().parse_args([])
    for key, value in changes.items():
        setattr(ns, key, value)
    return ns


@pytest.mark.parametrize("failure", ["latency", "loss", "crash"])
def test_search_brackets_the_knee(failure):
    session = FakeSession(knee=1000, failure=failure)
    result = search(session, "websocket", args(start_rate=100, refine=3, knee_repeats=0),
                             [0], 10)
    # Steps up 100, 200, 400, 800, 1600 then bisects between 800 and 1600.
    assert session.rates[:5] == [100, 200, 400, 800, 1600]
    assert 800 <= result.rate_msgs_s <= 1000 < result.failed_rate_msgs_s <= 1600
    assert result.failed_rate_msgs_s / result.rate_msgs_s < 1600 / 800  # refined
    assert result.delivery_msgs_s == result.rate_msgs_s * 50
    assert result.steps == len(session.rates) == 5 + 3
    assert result.why


def test_search_stops_at_max_rate():
    session = FakeSession(knee=math.inf)
    result = search(session, "sse", args(start_rate=100, max_rate=1000), [0], 10)
    assert session.rates == [100, 200, 400, 800]
    assert result.rate_msgs_s == 800 and math.isnan(result.failed_rate_msgs_s)
    assert "max-rate" in result.why


def test_search_steps_down_when_the_start_rate_fails():
    session = FakeSession(knee=30)
    result = search(session, "longpoll", args(start_rate=100, refine=0), [0], 10)
    assert session.rates[:3] == [100, 50, 25]
    assert result.rate_msgs_s == 25


def test_nothing_sustained_reports_zero():
    session = FakeSession(knee=0)
    result = search(session, "longpoll", args(start_rate=100), [0], 10)
    assert result.rate_msgs_s == 0 and result.delivery_msgs_s == 0
    assert len(session.rates) <= 4  # gives up after stepping down a few times


def test_loadgen_saturation_is_named():
    session = FakeSession(knee=100, loadgen_pct=97)
    result = search(session, "websocket", args(start_rate=100, refine=0), [0], 10)
    assert "loadgen-bound" in result.why
    assert result.bound == "loadgen" and result.failed_client_cpu_pct == 97


@pytest.mark.parametrize("server, loadgen, bound", [
    (97, 40, "server"), (97, 95, "both"), (60, 40, "none")])
def test_bound_and_cpu_of_the_first_failing_step(server, loadgen, bound):
    session = FakeSession(knee=400, server_pct=server, loadgen_pct=loadgen)
    result = search(session, "sse", args(start_rate=100, refine=1), [0], 10)
    assert result.bound == bound
    assert result.failed_server_cpu_pct == server and result.failed_client_cpu_pct == loadgen
    assert result.sustained_loadgen_saturated == (loadgen > 90)


def test_knee_is_repeated_and_a_lucky_step_does_not_count():
    session = FakeSession(knee=1000, flaky={800})
    result = search(session, "websocket",
                             args(start_rate=100, refine=0, knee_repeats=1), [0], 10)
    # 800 passed once, failed when repeated: the capacity falls back to 400.
    assert session.rates == [100, 200, 400, 800, 1600, 800, 800]
    assert result.rate_msgs_s == 400 and result.failed_rate_msgs_s == 800
    assert "knee not sharp" in result.why and result.knee_runs >= 3


def test_next_rate():
    assert bracket.next_rate(None, None, 10, 2, 1e9) == 10
    assert bracket.next_rate(10, None, 10, 2, 1e9) == 20
    assert bracket.next_rate(10, None, 10, 2, 15) is None
    assert bracket.next_rate(None, 10, 10, 2, 1e9) == 5
    assert bracket.next_rate(100, 400, 10, 2, 1e9) == pytest.approx(200)


def test_capacity_command_writes_a_run(tmp_path, fake_engine, capsys):
    """The command end to end on the fake engine (2 ms latency, never loses)."""
    import json

    from duplexbench.measure.results import load_run

    fake_engine("ok")
    out = tmp_path / "cap"
    code = capacity_command.main(["--transports", "sse", "--clients", "2", "--start-rate", "10",
                          "--max-rate", "40", "--duration", "0.5", "--warmup", "0.2",
                          "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    answer = json.loads((out / "capacity.json").read_text())
    (result,) = answer["results"]
    assert result["transport"] == "sse" and result["rate_msgs_s"] == 40
    assert answer["criteria"]["p99_ms_below"] == 100
    run = load_run(out)
    assert run.meta["complete"] is True and run.meta["command"] == "capacity"
    assert list(run.summary["rate_msgs_s"]) == [10, 20, 40]
    assert "deliveries/s" in printed and "results:" in printed


def test_capacity_by_subscribers_writes_bound_per_transport(tmp_path, fake_engine, capsys):
    """--by subscribers end to end on the fake engine: doubles subscribers up to the cap."""
    import json

    fake_engine("ok")
    out = tmp_path / "subs"
    code = capacity_command.main(["--by", "subscribers", "--transports", "sse,websocket",
                          "--start-clients", "2", "--max-clients", "8", "--rate", "5",
                          "--duration", "0.4", "--warmup", "0.1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    answer = json.loads((out / "capacity.json").read_text())
    assert answer["criteria"]["by"] == "subscribers" and answer["criteria"]["p95_ms_below"] == 500
    assert set(answer["bound"]) == {"sse", "websocket"}
    for result in answer["results"]:
        assert result["by"] == "subscribers" and result["clients"] == 8
        assert result["bound"] in judge.BOUNDS
    assert "capacity by subscribers" in printed


def _limited_session(most_clients: int) -> FakeSession:
    """A session whose limit checks refuse more than ``most_clients`` subscribers."""
    from duplexbench.machine.limits import LimitError

    class Limited(FakeSession):
        def check_limits(self, points):
            if points[0].clients > most_clients:
                raise LimitError("open files: `ulimit -Hn`")

    return Limited(knee=math.inf)


def test_subscriber_search_stops_at_the_machine_limit():
    from duplexbench.capacity.clients import search_clients

    session = _limited_session(4000)
    result = search_clients(session, "sse", args(by="subscribers", start_clients=1000), [0], 10)
    assert session.rates == [2.0, 2.0, 2.0]  # 1000, 2000, 4000 subscribers at 2 msg/s
    assert result.clients == 4000 and "machine's ceiling of 4,000 subscribers" in result.why


def test_subscriber_search_steps_to_the_machine_ceiling_between_doublings():
    """A limit between two doublings (here 5,000): the last step is the largest count that
    fits, not the last doubling below it."""
    from duplexbench.capacity.clients import search_clients

    session = _limited_session(5000)
    result = search_clients(session, "sse", args(by="subscribers", start_clients=1000), [0], 10)
    assert len(session.rates) == 4  # 1000, 2000, 4000, then the ceiling
    assert result.clients == 5000 and "ceiling" in result.why


def test_a_publisher_behind_schedule_bounds_the_load_generator():
    point = LoadPoint(index=0, repeat=0, transport="sse", clients=50, rate=4000.0,
                      payload_bytes=64)
    row = {"status": "ok", "lost": 0, "lat_p99_ms": 500.0, "server_cpu_pct": 40.0,
           "client_cpu_pct": 60.0, "sent": 300, "rate_msgs_s": 4000.0, "duration_s": 1.0}
    verdict = judge.judge(PointResult(point, row, measured=True), 100.0)
    assert not verdict.sustained and verdict.bound == "loadgen"
    busy = judge.judge(PointResult(point, {**row, "server_cpu_pct": 97.0}, measured=True), 100.0)
    assert busy.bound == "server"


def _both_saturated(**changes) -> PointResult:
    """The shape measured at make capacity's knee (2026-11-30): both cores ~96 %, p99 from
    the intended send 500 ms, from the actual send 4 ms, the whole schedule sent."""
    point = LoadPoint(index=0, repeat=0, transport="websocket", clients=50, rate=4530.0,
                      payload_bytes=64)
    row = {"status": "ok", "lost": 0, "lat_p99_ms": 509.0, "sent_p99_ms": 4.3,
           "server_cpu_pct": 97.0, "client_cpu_pct": 97.0, "sent": 13590,
           "rate_msgs_s": 4530.0, "duration_s": 3.0, **changes}
    return PointResult(point, row, measured=True)


def test_both_saturated_but_subscribers_kept_up_names_the_server():
    verdict = judge.judge(_both_saturated(), 100.0, publisher_realtime=True)
    assert not verdict.sustained and verdict.bound == "server"
    assert "kept up" in verdict.note and "4.3 ms" in verdict.note


@pytest.mark.parametrize("changes, realtime", [
    ({}, False),                                  # publisher may have been late for CPU
    ({"sent_p99_ms": 900.0}, True),               # subscribers fell behind the sends
    ({"sent": 9000}, True),                       # publisher short of its schedule
    ({"lost": 3, "status": "lost"}, True),        # a loss is not "kept up"
    ({"sent_p99_ms": float("nan")}, True),        # no send-time latency: cannot tell
])
def test_both_saturated_stays_both_without_evidence(changes, realtime):
    verdict = judge.judge(_both_saturated(**changes), 100.0, publisher_realtime=realtime)
    assert verdict.bound == "both" and verdict.note == ""


def test_a_saturated_loadgen_beside_an_idle_server_stays_loadgen():
    # 6,400 msg/s in the same run: server 79 %, load generator 96 %, p99 from send 1.3 s.
    row = _both_saturated(server_cpu_pct=79.0, client_cpu_pct=96.0, sent_p99_ms=1334.0,
                          lat_p99_ms=3108.0)
    assert judge.judge(row, 100.0, publisher_realtime=True).bound == "loadgen"
    quick = _both_saturated(server_cpu_pct=79.0, client_cpu_pct=96.0)
    assert judge.judge(quick, 100.0, publisher_realtime=True).bound == "loadgen"


def test_publisher_realtime_reads_the_points_counters(tmp_path):
    point = LoadPoint(index=3, repeat=0, transport="sse", clients=50, rate=100.0,
                      payload_bytes=64)
    assert not judge.publisher_realtime(tmp_path, point)  # no counters.json
    where = tmp_path / "points" / "003-sse-r0"
    where.mkdir(parents=True)
    (where / "counters.json").write_text('{"publisher_sched": "SCHED_FIFO 1"}')
    assert judge.publisher_realtime(tmp_path, point)
    (where / "counters.json").write_text('{"publisher_sched": "nice -10"}')
    assert not judge.publisher_realtime(tmp_path, point)
