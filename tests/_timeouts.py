"""Test timeouts in one unit that slow CI can stretch (python-websockets does the same).

A module of its own, not conftest.py: several test folders have a conftest.py,
and importing "conftest" by name would pick whichever came first.
"""

import os

__all__ = ["TIMEOUT_SCALE", "scaled"]

TIMEOUT_SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE
