"""The server's garbage-collector policy, and what the collector cost (for /metrics).

Why: CPython's cyclic collector runs a full (generation 2) collection whenever
the objects promoted since the last one exceed a quarter of the long-lived
ones. With 10,000 held connections every poll answer and every reconnect
creates objects (request, task, futures, parser state) that live for about a
second, long enough to be promoted, so full collections come every fraction of
a second and each walks every object of every held connection. Profiled at
10,000 long-polling subscribers (py-spy --native), ``gc_collect_main`` was half
of the server's CPU.

The policy (``--gc tuned``, the default) is what long-running Python servers
do: ``gc.freeze()`` once the app is built (its modules, routes and settings are
never scanned again) and a young-generation threshold large enough that the
objects of an answered poll are freed by reference counting before a
collection could promote them. Cycles are still collected, only in larger,
rarer batches. ``--gc python`` keeps CPython's defaults (700, 10, 10) for
comparison; ``/metrics`` reports collections and seconds per generation either
way, so the effect is measured, not assumed.
"""

from __future__ import annotations

import gc
import time

__all__ = ["GC_POLICIES", "GcStats", "apply_gc_policy"]

#: --gc choices: name -> (threshold0, threshold1, threshold2) or None (CPython's own).
GC_POLICIES: dict[str, tuple[int, int, int] | None] = {
    "tuned": (100_000, 50, 100),
    "python": None,
}


class GcStats:
    """Collections and seconds spent per generation, from ``gc.callbacks``."""

    __slots__ = ("collections", "seconds", "_started")

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.collections[generation] += 1
            self.seconds[generation] += time.perf_counter() - self._started

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def apply_gc_policy(name: str) -> None:
    """Apply a :data:`GC_POLICIES` entry (call once the app is built, before serving)."""
    thresholds = GC_POLICIES[name]
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
