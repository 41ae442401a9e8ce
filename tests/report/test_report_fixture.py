"""The committed fixtures are what make_fixture.py writes, small, and labelled synthetic."""

from __future__ import annotations

import json
from pathlib import Path

import make_fixture
import pandas as pd

# Not imported from conftest: several test folders have one (see tests/_timeouts.py).
FIXTURES = Path(__file__).resolve().parents[2] / "results" / "fixtures"


def test_committed_fixtures_match_generator(tmp_path):
    make_fixture.main([str(tmp_path)])
    for name in make_fixture.FIXTURES:
        fresh, committed = tmp_path / name, FIXTURES / name
        assert json.loads((fresh / "meta.json").read_text()) == json.loads(
            (committed / "meta.json").read_text()), name
        assert (fresh / "summary.csv").read_text() == (committed / "summary.csv").read_text()
        for parquet in ("samples.parquet", "load.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(fresh / parquet),
                                          pd.read_parquet(committed / parquet))


def test_fixtures_are_small_and_follow_the_schema():
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file()
                and not p.name.startswith("report"))
    assert total < 300_000
    assert "synthetic test data" in (FIXTURES / "README.md").read_text()
    for name in make_fixture.FIXTURES:
        summary = pd.read_csv(FIXTURES / name / "summary.csv")
        assert tuple(summary.columns) == tuple(make_fixture.SUMMARY_COLUMNS)
        assert list(pd.read_parquet(FIXTURES / name / "samples.parquet").columns) == [
            "point", "repeat", "transport", "subscriber", "seq", "latency_ms",
            "latency_sent_ms", "recv_s"]
        assert list(pd.read_parquet(FIXTURES / name / "load.parquet").columns) == [
            "point", "repeat", "transport", "process", "t_s", "cpu_user_s", "cpu_system_s",
            "rss_mib", "open_files", "connections", "phase"]
        meta = json.loads((FIXTURES / name / "meta.json").read_text())
        assert meta["schema_version"] == 2 and "synthetic" in meta["cpu_model"].lower() + \
            meta["hostname"]
