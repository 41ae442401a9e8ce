"""Fixtures for the report tests: copies of the committed synthetic runs, and variants.

Tests write reports into the run directory, so they work on copies in tmp_path and
never touch results/fixtures.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "results" / "fixtures"
sys.path.insert(0, str(HERE))  # make_fixture.py lives beside the tests

import make_fixture  # noqa: E402


@pytest.fixture
def fixture_run(tmp_path):
    """``fixture_run("synthetic-a")`` -> a private copy of that committed run."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


@pytest.fixture
def model_run(tmp_path):
    """``model_run(name, **RunModel fields)`` -> a freshly written synthetic run."""

    def write(name: str, **fields) -> Path:
        model = make_fixture.RunModel(run_id=name, scenario="variant", hostname="synthetic", **fields)
        return make_fixture.write_run(model, tmp_path / name)

    return write
