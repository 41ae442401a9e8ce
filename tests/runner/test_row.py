"""The row of a point is assembled in one place: base, the extensions' columns, then notes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from duplexbench.machine.limits import loadgen_layout
from duplexbench.measure.results import SUMMARY_COLUMNS
from duplexbench.runner.extension import PointContext, PointData, PointExtension
from duplexbench.runner.row import assemble, failed_base
from duplexbench.scenario import LoadPoint, parse_scenario

POINT = LoadPoint(index=0, repeat=0, transport="sse", clients=2, rate=10.0, payload_bytes=8)


class Column(PointExtension):
    """Adds one column and one note, and remembers what it saw."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []

    def contribute(self, ctx, row, data):
        self.seen.append("contribute:" + ",".join(k for k in row if k.startswith("x_")))
        return {f"x_{self.name}": data is not None}

    def notes(self, ctx, row, data):
        self.seen.append("notes:" + ",".join(k for k in row if k.startswith("x_")))
        return [f"note from {self.name}"]


def _ctx() -> PointContext:
    return PointContext(parse_scenario({"name": "t"}), POINT, Path("."))


def test_columns_in_list_order_then_every_note_after_every_column():
    first, second = Column("a"), Column("b")
    base = {"status": "ok", "lost": 0, "warnings": "base warning"}
    row = assemble(base, _ctx(), PointData({}, None, None), [first, second], expect_loss=False)
    assert list(row)[-2:] == ["x_a", "x_b"] and row["x_a"] is True
    assert first.seen == ["contribute:", "notes:x_a,x_b"]  # notes see every column
    assert second.seen == ["contribute:x_a", "notes:x_a,x_b"]
    assert row["warnings"] == "base warning; note from a; note from b"
    assert base == {"status": "ok", "lost": 0, "warnings": "base warning"}  # not mutated


def test_lost_messages_are_said_once_unless_expected():
    row = assemble({"status": "ok", "lost": 3, "warnings": ""}, _ctx(), None, [], expect_loss=False)
    assert row["warnings"] == "LOST 3 messages: the scenario expects none"
    quiet = assemble({"status": "ok", "lost": 3, "warnings": ""}, _ctx(), None, [], expect_loss=True)
    assert quiet["warnings"] == ""


def test_a_failed_point_has_every_column_empty_but_its_identity():
    run = SimpleNamespace(scenario=parse_scenario({"name": "t"}), run_id="r1", engine="native",
                          layout=loadgen_layout(0, 1))
    row = failed_base(run, POINT, "server did not start")
    assert list(row)[:len(SUMMARY_COLUMNS)] == list(SUMMARY_COLUMNS)
    assert (row["status"], row["validity"], row["warnings"]) == ("failed", "failed",
                                                                  "server did not start")
    assert row["lat_p50_ms"] is None and row["transport"] == "sse"
    extended = assemble(row, _ctx(), None, [Column("a")], expect_loss=False)
    assert extended["x_a"] is False  # a failed point still gets the extension's columns
