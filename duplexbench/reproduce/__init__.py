"""Findings that survive a rerun: `python -m duplexbench reproduce SCENARIO --runs N`.

A finding ("WebSocket had 2.4x lower p99 than long polling") is acted on as if
another run would say the same; issue 20 measured one in six that did not. This
package runs a scenario N times, each a complete, separate run (runs.py), and
checks every finding of every run against the others' figures (judge.py): held,
moved or contradicted, and how often each run's stated intervals covered the
others' figures. output.py writes the table (console, reproduce.md,
reproduce.json). The coverage it measures is what calibrates the intervals
(duplexbench/report/calibration.py; docs/DESIGN.md, "Confidence").
"""

__all__: list[str] = []
