"""The ``make_run`` fixture: synthetic runs under the test's tmp_path (see synthetic.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .synthetic import Model, write_run


@pytest.fixture
def make_run(tmp_path):
    """``make_run(name, model=Model(), seed=0)`` -> path of a synthetic run under tmp_path."""

    def make(name: str, model: Model = Model(), seed: int = 0) -> Path:
        return write_run(tmp_path / name, model, seed)

    return make
