"""--loadgen-procs reaches the engine: two subscriber processes deliver what one does."""

from __future__ import annotations

import json

from duplexbench.commands import run as run_command

from duplexbench.runner import loop
from duplexbench.measure.results import load_run

from .helpers import no_children_left, write_scenario


def test_two_loadgen_processes_deliver_the_same_counts(tmp_path, no_calibration, capsys):
    scenario = write_scenario(tmp_path, transports=["sse", "websocket"], clients=[6], duration=1.0)
    counts = {}
    for procs in (1, 2):
        out = tmp_path / f"p{procs}"
        code = run_command.main([str(scenario), "--out", str(out), "--no-report", "--quiet",
                            "--loadgen-procs", str(procs)])
        printed = capsys.readouterr().out
        assert code == loop.EXIT_OK, printed
        run = load_run(out)
        assert (run.summary["lost"] == 0).all()
        assert (run.summary["loadgen_procs"] == procs).all()
        assert run.meta["loadgen"]["procs"] == procs
        spec = json.loads(next((out / "points").glob("000-*/spec.json")).read_text())
        assert spec["loadgen_procs"] == procs
        counts[procs] = dict(zip(run.summary["transport"], run.summary["delivered"]))
    assert counts[1] == counts[2] and all(v > 0 for v in counts[1].values())
    assert no_children_left() == []
