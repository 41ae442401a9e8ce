"""Faults as scenarios: restart the server or cut every connection during a point.

``spec`` parses the ``[faults]`` table (imported by the scenario loader, so kept
light), ``driver`` carries the faults out while a point runs, ``analysis`` turns
deliveries and process samples into recovery figures, and duplexbench/benchmarks/soak.py judges a long run.
See docs/DESIGN.md, "Faults and soak".
"""

from ..scenario.faults import (
    FAULT_KINDS,
    FaultError,
    FaultOptions,
    loss_allowed,
    parse_faults,
)

__all__ = ["FAULT_KINDS", "FaultError", "FaultOptions", "loss_allowed", "parse_faults"]
