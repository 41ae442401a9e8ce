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
never scanned again) and a young-generation threshold of 1,000,000 net
allocations instead of 700. Measured at 10,000 long-polling subscribers
(``duplexbench_gc_collected_total``): the young collections found no cyclic
garbage at all (the serving path frees everything by reference counting), so
they were pure cost. With 100,000 the server spent 1.08 s in 12 young
collections (about 90 ms each, scanning the held polls' live objects) and 63 µs
per delivery; with 1,000,000, no collection in the measured window and 48 µs.
The count is allocations minus frees, so a steady load hardly moves it: in 60 s
at 10,000 long-polling subscribers no collection ran at all. A collection still
comes when the live heap grows by the threshold, and costs about one walk of
the live connections' objects (~90 ms per 100,000 here); cycles are still
collected, only rarely. ``--gc python`` keeps CPython's defaults (700, 10, 10) for
comparison; ``/metrics`` reports collections and seconds per generation either
way, so the effect is measured, not assumed.
"""

from __future__ import annotations

import gc
import time

__all__ = ["GC_POLICIES", "GcStats", "apply_gc_policy"]

#: --gc choices: name -> (threshold0, threshold1, threshold2) or None (CPython's own).
GC_POLICIES: dict[str, tuple[int, int, int] | None] = {
    "tuned": (1_000_000, 10, 10),  # CPython's own ratios between generations
    "python": None,
}


class GcStats:
    """Collections, seconds spent and objects freed per generation, from ``gc.callbacks``."""

    __slots__ = ("collections", "seconds", "collected", "_started")

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        #: Unreachable objects found: what the cycles cost in memory until collected.
        self.collected = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.collections[generation] += 1
            self.seconds[generation] += time.perf_counter() - self._started
            self.collected[generation] += info["collected"]

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
