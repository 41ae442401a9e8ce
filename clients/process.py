"""What every load-generator process sets up first: open files, dying with its parent, the loop.

Why a module of its own: the conductor (clients.loadgen), its shard processes
(clients.shard) and the publisher process (clients.pubproc) all need it, and
the conductor imports the shard module to run a sharded point: kept in either
of them, the two would import each other.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal

__all__ = ["loop_factory", "raise_nofile_limit", "tune_process"]


def raise_nofile_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: thousands of sockets need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def tune_process() -> None:
    """Die with the parent; precise sleeps (1 us timer slack instead of 50 us)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        libc.prctl(29, 1000)  # PR_SET_TIMERSLACK, ns
    except (OSError, AttributeError):
        pass


def loop_factory():
    """uvloop's loop (a Python load generator is CPU-bound long before the server is), or
    None for asyncio's own (no uvloop, or DUPLEXBENCH_LOADGEN_ASYNCIO set, for comparisons)."""
    if os.environ.get("DUPLEXBENCH_LOADGEN_ASYNCIO"):
        return None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return None
    return uvloop.new_event_loop
