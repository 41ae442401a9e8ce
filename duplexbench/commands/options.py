"""What the measuring commands' command lines share: the scenario overrides.

``run``, ``ab`` and ``stacks`` accept ``--transports``, ``--duration``, ``--warmup``
and ``--repeats`` on top of a scenario file; they are applied here, validated
exactly like the file (a typo is the same ScenarioError).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..scenario import Scenario

__all__ = ["prepare_scenario"]


def prepare_scenario(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """Apply command-line overrides, validated exactly like the file."""
    changes: dict[str, Any] = {}
    if args.transports:
        changes["transports"] = [t.strip() for t in args.transports.split(",") if t.strip()]
    if args.duration is not None:
        changes["duration_s"] = args.duration
    if getattr(args, "warmup", None) is not None:  # `ab` has no --warmup
        changes["warmup_s"] = args.warmup
    if args.repeats is not None:
        changes["repeats"] = args.repeats
    return scenario.with_overrides(**changes) if changes else scenario
