"""notebooks/analysis.ipynb runs headless against a fixture and draws its figures."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"
TIMEOUT_S = int(120 * float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1")))


def _execute(monkeypatch, run_dir: Path):
    monkeypatch.setenv("DUPLEXBENCH_RESULTS", str(run_dir))  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return notebook


def _images(notebook) -> int:
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []))


def _text(notebook) -> str:
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []))


def test_committed_notebook_is_clean_and_parameterised():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear outputs"
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and 'RESULTS_DIR = "../results/latest"' in parameters[0].source
    assert "DUPLEXBENCH_RESULTS" in "".join(c.source for c in code)


def test_notebook_runs_against_fixture(monkeypatch, fixture_run):
    run_dir = fixture_run("synthetic-a")
    notebook = _execute(monkeypatch, run_dir)
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = _text(notebook)
    assert f"{run_dir}: 12 load points, 1,800 samples, 960 process samples" in text
    assert "WebSocket used 5.5× less server CPU" in text
    # CDF, p50/p99 vs subscribers, server CPU, CPU vs loadgen, RSS, bytes, requests,
    # latency over time, histogram, CPU over time.
    assert _images(notebook) == 10
    assert not list(run_dir.glob("report*")), "the notebook only reads result files"


def test_notebook_on_an_incomplete_run(monkeypatch, fixture_run):
    notebook = _execute(monkeypatch, fixture_run("synthetic-incomplete"))
    outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "INCOMPLETE RUN" in markdown
    assert "subscribers were not swept" in _text(notebook)
    # Rate sweep and delivery figures appear here; the subscriber sweep (and with it the
    # memory per connection, which needs one) does not.
    assert _images(notebook) == 10
    assert "subscribers were not swept: no memory per connection" in _text(notebook)
