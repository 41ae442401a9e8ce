"""engines --latency: where its results go (``DIR`` or ``--out DIR``, as ``engines`` takes it)."""

from pathlib import Path

import pytest

from duplexbench.benchmarks.engine_latency import out_dir


def test_out_option_names_the_directory() -> None:
    assert out_dir(["--out", "/tmp/x"]) == Path("/tmp/x")


def test_positional_directory_still_works() -> None:
    assert out_dir(["/tmp/y"]) == Path("/tmp/y")


def test_default_is_a_fresh_results_directory() -> None:
    path = out_dir([])
    assert path.parent == Path("results") and path.name.startswith("engines-latency-")


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(SystemExit):
        out_dir(["--bogus"])
