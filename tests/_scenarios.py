"""Tiny scenario files for the tests that drive the real runner, from one writer.

A module of its own, like _timeouts.py: the tests that run ``duplexbench run``, ``engines``,
``stacks`` or ``ab`` each need a short scenario that differs in a few values; writing the TOML
here keeps the keys (and their spelling, which the loader checks) in one place.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["tiny_scenario"]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)  # numbers and strings: TOML accepts JSON's spelling


def tiny_scenario(name: str, *, transports, clients: int, rate: float, payload_bytes: int = 64,
                  warmup_s: float = 0.5, duration_s: float = 1.5, drain_s: float = 0.5,
                  tables: dict[str, dict[str, Any]] | None = None, **keys: Any) -> str:
    """A fan-out scenario's TOML text; ``keys`` add top-level keys, ``tables`` [tables]."""
    top = {"name": name, "transports": list(transports), "pattern": "fanout",
           "clients": [clients], "rate": [rate], "payload_bytes": [payload_bytes],
           "warmup_s": warmup_s, "duration_s": duration_s, "drain_s": drain_s, **keys}
    lines = [f"{key} = {_toml(value)}" for key, value in top.items()]
    for table, values in (tables or {}).items():
        lines += ["", f"[{table}]"] + [f"{key} = {_toml(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
