"""reproduce/runs.py without running anything: how existing runs are labelled for judging."""

from __future__ import annotations

from pathlib import Path

from duplexbench.reproduce.runs import judged_outcomes


def test_runs_of_two_series_keep_apart():
    dirs = [Path("/r/a/run-1"), Path("/r/a/run-2"), Path("/r/b/run-1"), Path("/r/x")]
    labels = [o.label for o in judged_outcomes(dirs)]
    # Two run-1s would be judged as one run (each skips "itself" by label): told apart.
    assert labels == ["a/run-1", "run-2", "b/run-1", "x"]
    assert len({o.label for o in judged_outcomes([Path("/a/s/run-1"), Path("/b/s/run-1")])}) == 2
