"""Skip marks for tests that start a program besides Python, saying why with doctor's words.

``make test`` installs every such program first (``make setup``); where it could not (not
root, no apt), only the tests that need the missing part skip, and their reason is the
doctor's finding and fix (duplexbench/machine/doctor.py), the same a run would print.
"""

from __future__ import annotations

import functools

import pytest

from duplexbench.machine import doctor

__all__ = ["missing", "needs"]


@functools.lru_cache(maxsize=None)
def missing(key: str) -> str | None:
    """Why capability ``key`` is unavailable here (doctor's finding and fix), or None."""
    capability, finding = doctor.check([key])[0]
    if finding.state == doctor.OK:
        return None
    return f"{capability.title} unavailable: {finding.found}; fix: {finding.fix}"


def needs(key: str) -> pytest.MarkDecorator:
    """``@needs("nginx")`` or ``pytestmark = needs("redis")``."""
    reason = missing(key)
    return pytest.mark.skipif(reason is not None, reason=reason or "")
