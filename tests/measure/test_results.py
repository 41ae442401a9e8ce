"""Results directory: atomic files, running/incomplete marking, latest link, reader."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from duplexbench import SCHEMA_VERSION
from duplexbench.measure.results import (
    SUMMARY_COLUMNS,
    RunError,
    RunWriter,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    is_complete,
    load_run,
    new_run_id,
)


def make_row(point: int, transport: str = "websocket", **extra) -> dict:
    row = {column: 0 for column in SUMMARY_COLUMNS}
    row.update(run_id="r", scenario="quick", engine="native", transport=transport,
               point=point, repeat=0, clients=10, rate_msgs_s=200.0, keepalive=True,
               lat_p50_ms=1.5, status="ok", warnings="")
    row.update(extra)
    return row


def make_samples(n: int) -> pd.DataFrame:
    return pd.DataFrame({"subscriber": np.arange(n), "seq": np.arange(n),
                         "latency_ms": np.linspace(1, 2, n), "latency_sent_ms": np.ones(n),
                         "recv_s": np.linspace(0, 1, n)})


def make_load(n: int) -> pd.DataFrame:
    return pd.DataFrame({"process": ["server"] * n, "t_s": np.arange(n) / 10,
                         "cpu_user_s": np.arange(n) / 100, "cpu_system_s": 0.0,
                         "rss_mib": 30.0, "open_files": 10, "connections": 5,
                         "phase": "measure"})


def leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


# ---------------------------------------------------------------------------
# Atomic writes


def test_atomic_writes_replace_whole_files(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert leftovers(target.parent) == []
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_atomic_write_json_is_strict_json(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"nan": float("nan"), "np": np.int64(3), "path": tmp_path,
                               "tuple": (1, 2.5), "when": datetime(2026, 1, 1)})
    data = json.loads(target.read_text())  # strict parser: no NaN tokens
    assert data == {"nan": None, "np": 3, "path": str(tmp_path), "tuple": [1, 2.5],
                    "when": "2026-01-01T00:00:00"}


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"ok": 1})

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(target, {"ok": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"ok": 1}
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------
# Run ids


def test_new_run_id_format_and_collision_suffix(tmp_path):
    now = datetime(2026, 11, 24, 22, 35, 1, tzinfo=timezone.utc)
    run_id = new_run_id("quick", root=tmp_path, now=now)
    assert run_id == "20261124-223501-quick"
    (tmp_path / run_id).mkdir()
    other = new_run_id("quick", root=tmp_path, now=now)
    assert other.startswith("20261124-223501-quick-") and len(other) == len(run_id) + 5
    assert not (tmp_path / other).exists()


# ---------------------------------------------------------------------------
# RunWriter


def test_unfinished_writer_leaves_valid_running_run(tmp_path):
    run_dir = tmp_path / "run"
    writer = RunWriter(run_dir, {"engine": "native"}).start()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "running" and meta["complete"] is False
    assert meta["schema_version"] == SCHEMA_VERSION and meta["run_id"] == "run"
    writer.add_point(make_row(0), make_samples(5), make_load(3))
    writer.add_point(make_row(1, "sse"), make_samples(7), make_load(4))
    # No finish(): as if the process died here. Everything written so far reads back.
    run = load_run(run_dir)
    assert run.meta["status"] == "running" and not is_complete(run.meta)
    assert run.meta["points_done"] == 2 and len(run.meta["points"]) == 2
    assert list(run.summary["transport"]) == ["websocket", "sse"]
    assert list(run.summary.columns[: len(SUMMARY_COLUMNS)]) == list(SUMMARY_COLUMNS)
    samples = run.samples()
    assert len(samples) == 12
    # The writer adds point/repeat/transport when the producer left them out.
    assert list(samples.groupby("point")["transport"].first()) == ["websocket", "sse"]
    assert len(run.load()) == 7 and set(run.load()["point"]) == {0, 1}
    assert not (tmp_path / "latest").exists()
    assert leftovers(run_dir) == []


def test_finish_complete_and_latest_link(tmp_path):
    first = RunWriter(tmp_path / "run-a", {}).start()
    first.add_point(make_row(0), make_samples(3), make_load(2))
    first.finish()
    meta = json.loads((tmp_path / "run-a" / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["complete"] is True and is_complete(meta)
    assert meta["ended_at"] and meta["points_done"] == 1
    link = tmp_path / "latest"
    assert link.is_symlink() and os.readlink(link) == "run-a"  # relative

    second = RunWriter(tmp_path / "run-b", {}).start()
    second.add_warning("the load generator used 95% of a core")
    second.finish("incomplete", reason="interrupted (Ctrl-C)")
    assert os.readlink(link) == "run-b"
    run = load_run(link)
    assert run.path == (tmp_path / "run-b").resolve()
    assert run.meta["status"] == "incomplete" and run.meta["complete"] is False
    assert run.meta["reason"] == "interrupted (Ctrl-C)" and not run.complete
    assert run.meta["warnings"] == ["the load generator used 95% of a core"]
    assert run.summary.empty and list(run.summary.columns) == list(SUMMARY_COLUMNS)
    assert run.samples().empty and "latency_ms" in run.samples().columns
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []


def test_failed_status_and_no_latest_for_baselines(tmp_path):
    writer = RunWriter(tmp_path / "baseline", {}, latest=False).start()
    writer.finish("failed", reason="server did not start")
    assert load_run(tmp_path / "baseline").meta["status"] == "failed"
    assert not (tmp_path / "latest").exists()


def test_writer_misuse_is_a_clear_error(tmp_path):
    writer = RunWriter(tmp_path / "r", {})
    with pytest.raises(RuntimeError, match="start"):
        writer.add_point(make_row(0), make_samples(1), make_load(1))
    writer.start()
    with pytest.raises(ValueError, match="finish"):
        writer.finish("done")
    writer.finish()
    with pytest.raises(RuntimeError, match="already"):
        writer.add_warning("late")


def test_is_complete_needs_both_fields():
    assert is_complete({"status": "complete", "complete": True})
    assert not is_complete({"status": "complete", "complete": False})
    assert not is_complete({"status": "running", "complete": True})
    assert not is_complete({})


# ---------------------------------------------------------------------------
# load_run


def test_load_run_tolerates_added_and_missing_columns(tmp_path):
    writer = RunWriter(tmp_path / "r", {}).start()
    row = make_row(0, future_metric=4.2)
    del row["pub_bytes_up_per_msg"], row["warnings"]
    writer.add_point(row, make_samples(2), make_load(2))
    writer.finish()
    summary = load_run(tmp_path / "r").summary
    assert summary.loc[0, "future_metric"] == 4.2  # kept, after the standard columns
    assert list(summary.columns) == [*SUMMARY_COLUMNS, "future_metric"]
    assert pd.isna(summary.loc[0, "pub_bytes_up_per_msg"])
    assert summary.loc[0, "warnings"] == ""  # text columns read back as text

    # A summary written by an older or newer writer with fewer columns.
    (tmp_path / "r" / "summary.csv").write_text("run_id,transport,lat_p50_ms\nr,sse,1.5\n")
    summary = load_run(tmp_path / "r").summary
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary.loc[0, "transport"] == "sse" and pd.isna(summary.loc[0, "lat_p99_ms"])


def test_load_run_rejects_what_is_not_a_run(tmp_path):
    with pytest.raises(RunError, match="no such results directory"):
        load_run(tmp_path / "missing")
    with pytest.raises(RunError, match="not a duplexbench run"):
        load_run(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(RunError, match="unreadable"):
        load_run(tmp_path)
    (tmp_path / "meta.json").write_text('{"hello": 1}')
    with pytest.raises(RunError, match="schema_version"):
        load_run(tmp_path)


def test_load_run_hints_at_latest(tmp_path):
    RunWriter(tmp_path / "run", {}).start().finish()
    with pytest.raises(RunError, match="latest"):
        load_run(tmp_path)


def test_samples_with_mixed_types_are_still_written(tmp_path):
    writer = RunWriter(tmp_path / "r", {}).start()
    writer.add_point(make_row(0), make_samples(2).assign(subscriber=[1, "a"]), make_load(1))
    assert len(load_run(tmp_path / "r").samples()) == 2


def test_points_are_written_once_each_and_read_back_as_one(tmp_path):
    writer = RunWriter(tmp_path / "r", {"command": "run"}, latest=False).start()
    writer.add_point(make_row(0), make_samples(5), make_load(3))
    first = tmp_path / "r" / "samples" / "000-websocket-r0.parquet"
    stamp = first.stat().st_mtime_ns
    writer.add_point(make_row(1), make_samples(7), make_load(4))
    assert sorted(p.name for p in (tmp_path / "r" / "samples").iterdir()) == [
        "000-websocket-r0.parquet", "001-websocket-r0.parquet"]
    assert first.stat().st_mtime_ns == stamp  # never rewritten
    assert not (tmp_path / "r" / "samples.parquet").exists()
    assert not hasattr(writer, "_samples")  # only summary rows are kept in memory
    writer.finish()
    run = load_run(tmp_path / "r")
    assert len(run.samples()) == 12 and list(run.samples()["point"].unique()) == [0, 1]
    assert len(run.load()) == 7 and "rss_mib" in run.load().columns


def test_schema_1_runs_still_load_in_mib(tmp_path):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "meta.json").write_text('{"schema_version": 1, "status": "complete"}')
    old = make_row(0, server_rss_mb_max=104.8576, lost=0, delivered=10, lat_samples=10)
    for new in ("server_rss_mib_max", "validity", "validity_notes", "late"):
        old.pop(new)
    pd.DataFrame([old]).to_csv(run_dir / "summary.csv", index=False)
    make_load(2).rename(columns={"rss_mib": "rss_mb"}).assign(point=0, repeat=0, transport="sse") \
        .to_parquet(run_dir / "load.parquet")
    pd.DataFrame({"point": [0], "repeat": [0], "transport": ["websocket"], "latency_ms": [1.0]}) \
        .to_parquet(run_dir / "samples.parquet")
    run = load_run(run_dir)
    assert run.summary["server_rss_mib_max"].iloc[0] == pytest.approx(100.0)
    assert run.load()["rss_mib"].iloc[0] == pytest.approx(30e6 / 2**20)
    assert run.summary["validity"].iloc[0] == "few-samples"  # classified on load
