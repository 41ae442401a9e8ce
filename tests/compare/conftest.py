"""``make_run``: synthetic runs under the test's tmp_path (see synthetic.py); ``ab_clone``,
``ab_child``, ``ab_same``: real A/B runs made once per session (see realruns.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .realruns import (CHILD_SCENARIO_NAME, git, hidden_by_disturbance, make_clone,
                       new_root, run_ab)
from .synthetic import Model, write_run


@pytest.fixture
def make_run(tmp_path):
    """``make_run(name, model=Model(), seed=0)`` -> path of a synthetic run under tmp_path."""

    def make(name: str, model: Model = Model(), seed: int = 0) -> Path:
        return write_run(tmp_path / name, model, seed)

    return make


# Real runs, made once per session and shared by test_ab.py and test_e2e.py (realruns.py).


@pytest.fixture(scope="session")
def ab_clone():
    """A repository with commits tagged parent and child (+2 ms and +100 us per delivery)."""
    root = new_root("duplexbench-ab-test-")
    try:
        yield make_clone(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ab_child(ab_clone):
    """``duplexbench ab parent`` with the child checked out: regressions to find."""
    git(ab_clone, "checkout", "-q", "child")
    result = run_ab(ab_clone, "parent", ab_clone.parent / "ab-child", CHILD_SCENARIO_NAME,
                    timeout=400)
    hidden = hidden_by_disturbance(result)
    if hidden:  # the gate said why it could not judge there: measured again, once
        print(f"ab_child: disturbed repeats hid latency on {', '.join(hidden)}; run again")
        result = run_ab(ab_clone, "parent", ab_clone.parent / "ab-child-again",
                        CHILD_SCENARIO_NAME, timeout=400)
    return result


@pytest.fixture(scope="session")
def ab_same(ab_clone):
    """``duplexbench ab HEAD`` with the parent checked out: the same build on both sides."""
    git(ab_clone, "checkout", "-q", "parent")
    try:
        return run_ab(ab_clone, "HEAD", ab_clone.parent / "ab-same")
    finally:
        git(ab_clone, "checkout", "-q", "child")
