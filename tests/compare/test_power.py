"""gate-power: cases, the order of the sides, the tables, and one real round.

The real round is tiny (WebSocket only, 2 repeats of 0.5 s: a base, A/A and +100 B per
message, ~25 s): it must write its record, flag the pad naming bytes, leave A/A alone, and a
second call with --resume must not measure again. The tables are checked on records made
here, where the truth is known.
"""

from __future__ import annotations

import json

import pytest

from duplexbench.commands import gate_power
from duplexbench.compare.ab import INJECT_VARS
from duplexbench.compare.power import (PowerError, claim_round, parse_case, point_order, round_file,
                                       williams_rows)
from duplexbench.compare.power_table import case_rows, cpu_power, markdown, smallest_caught
from tests._scenarios import tiny_scenario
from tests._timeouts import scaled

pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(180))]


def test_cases_parse_and_blank_every_other_injection():
    cpu = parse_case("cpu:4")
    assert (cpu.kind, cpu.size, cpu.slug) == ("cpu", 4.0, "cpu4")
    assert cpu.env == {**{v: "" for v in INJECT_VARS}, "DUPLEXBENCH_INJECT_CPU_US": "4"}
    assert parse_case("AA").env == {v: "" for v in INJECT_VARS}
    assert parse_case("delay:1.5").env["DUPLEXBENCH_INJECT_DELAY_MS"] == "1.5"
    assert parse_case("pad:100").label == "+100 B per message"
    for bad in ("cpu", "cpu:x", "cpu:-1", "cpu:2.5", "pad:0", "heat:3"):
        with pytest.raises(PowerError):
            parse_case(bad)


def test_every_side_runs_at_every_position_and_after_every_other_equally_often():
    from collections import Counter

    for n in range(2, 8):
        rows = williams_rows(n)
        assert len(rows) == (n if n % 2 == 0 else 2 * n)
        assert all(sorted(row) == list(range(n)) for row in rows)
        positions = Counter((arm, at) for row in rows for at, arm in enumerate(row))
        assert set(positions.values()) == {len(rows) // n}, n
        follows = Counter((a, b) for row in rows for a, b in zip(row, row[1:]))
        assert len(follows) == n * (n - 1) and len(set(follows.values())) == 1, n


def test_the_base_is_not_kept_in_one_place_and_the_order_is_seeded():
    # The base kept in the middle cost 3.5 % more per delivery than its neighbours (A/A read
    # -3.5 % on every transport): the base moves through every position like the cases.
    from duplexbench.scenario import LoadPoint

    cases = ["aa", "cpu5"]

    def point(transport, repeat):
        return LoadPoint(index=0, repeat=repeat, transport=transport, clients=10, rate=100,
                         payload_bytes=64)

    for t in ("sse", "websocket", "ndjson", "longpoll"):
        orders = [point_order(1, point(t, r), "base", cases) for r in range(6)]
        assert all(sorted(o) == ["aa", "base", "cpu5"] for o in orders)
        assert sorted(o.index("base") for o in orders) == [0, 0, 1, 1, 2, 2]
        assert sorted(o.index("aa") for o in orders) == [0, 0, 1, 1, 2, 2]
    assert point_order(1, point("sse", 2), "base", cases) == point_order(1, point("sse", 2),
                                                                         "base", cases)
    assert point_order(1, point("sse", 0), "base", ["aa"]) == ["base", "aa"]
    assert point_order(1, point("sse", 1), "base", ["aa"]) == ["aa", "base"]


def _record(number: int, cpu_named: dict[str, bool], aa_flagged: bool = False) -> dict:
    def measured(change):
        return {t: {"server_cpu_us_per_msg": {"change": change, "delta": 1.0}}
                for t in ("sse", "websocket")}

    regs = [{"transport": t, "metric": "server_cpu_us_per_msg", "change": 0.1, "reason": ""}
            for t, hit in cpu_named.items() if hit]
    return {"round": number, "cases": {
        "aa": {"kind": "none", "size": 0, "label": "A/A", "exit": int(aa_flagged),
               "flagged": aa_flagged, "regressions": [], "measured": measured(0.01)},
        "cpu:4": {"kind": "cpu", "size": 4, "label": "+4 us CPU per delivery",
                  "exit": int(bool(regs)), "flagged": bool(regs), "regressions": regs,
                  "measured": measured(0.10)}}}


def test_a_round_is_claimed_by_one_process_and_a_dead_claim_is_taken_over(tmp_path):
    import subprocess
    import sys

    mine = claim_round(tmp_path, 3)
    assert mine is not None and mine.read_text() == str(__import__("os").getpid())
    assert claim_round(tmp_path, 3) is None  # held by a live process (this one)
    assert claim_round(tmp_path, 4) is not None  # another round is free
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    mine.write_text(gone)  # as a killed gate-power process leaves it
    again = claim_round(tmp_path, 3)
    assert again is not None and again.read_text() != gone


def test_tables_count_flags_per_case_and_transport():
    records = [_record(n, {"sse": True, "websocket": n < 8}, aa_flagged=(n == 0))
               for n in range(10)]
    rows = {r["case"]: r for r in case_rows(records)}
    assert rows["aa"]["flagged"] == 1 and rows["aa"]["runs"] == 10
    assert rows["cpu:4"]["flagged"] == 10
    assert rows["cpu:4"]["moved"] == {"sse": pytest.approx(0.10), "websocket": pytest.approx(0.10)}
    named = {(e["case"], e["transport"]): e["named"] for e in cpu_power(records)}
    assert named[("cpu:4", "sse")] == 10 and named[("cpu:4", "websocket")] == 8
    caught = smallest_caught(records)
    assert caught["sse"]["case"] == "cpu:4" and caught["websocket"] is None
    text = markdown(records)
    assert "| `aa` | A/A | server CPU/msg: sse +1.0 %, websocket +1.0 % | 1 / 10 (false alarms)" in text
    assert "sse +10.0 % (`cpu:4`); websocket none" in text


@pytest.fixture(scope="module")
def one_round(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate-power")
    scenario = root / "tiny.toml"
    scenario.write_text(tiny_scenario("gp-tiny", transports=["websocket"], clients=5, rate=200,
                                      warmup_s=0.3, duration_s=0.5, drain_s=0.3, repeats=2,
                                      seed=1, tables={"server": {"uvloop": True}}))
    out = root / "out"
    argv = ["--scenario", str(scenario), "--cases", "aa,pad:100", "--runs", "1", "--out",
            str(out), "--quiet"]
    status = gate_power.main(argv)
    return status, out, argv


def test_a_round_is_judged_by_the_gate_and_written(one_round):
    status, out, _ = one_round
    assert status == 0
    record = json.loads(round_file(out, 1).read_text())
    pad, aa = record["cases"]["pad:100"], record["cases"]["aa"]
    assert pad["flagged"] and {r["metric"] for r in pad["regressions"]} >= {"bytes_down_per_msg"}
    moved = pad["measured"]["websocket"]["bytes_down_per_msg"]["delta"]
    assert moved == pytest.approx(100, abs=2)  # the injection as measured
    assert not aa["flagged"], aa["regressions"]
    # Rows 0 and 1 of the Williams design over three sides: the base first, then last.
    assert [o.index("A") for o in record["order"]] == [0, 2], record["order"]
    meta = json.loads((out / "round-001" / "pad100" / "meta.json").read_text())
    assert meta["inject"]["pad_bytes"] == 100 and meta["gate_power"]["case"] == "pad:100"
    table = (out / "gate-power.md").read_text()
    assert "| `pad:100` | +100 B per message | websocket +" in table


def test_resume_measures_nothing_twice_and_other_settings_are_refused(one_round, capsys):
    _, out, argv = one_round
    assert gate_power.main(argv + ["--resume"]) == 0
    assert not (out / "round-002").exists()
    assert gate_power.main(argv) == 2  # without --resume: refused, rounds kept
    changed = [a if a != "aa,pad:100" else "aa,pad:50" for a in argv]
    assert gate_power.main(changed + ["--resume"]) == 2
    assert "other settings" in capsys.readouterr().out
    assert round_file(out, 1).exists()
