"""The ``[faults]`` scenario table: what goes wrong during a point, and when.

A benchmark of transports that only ever sees a healthy server says nothing
about the moment that matters most to their users: the server restarts (a
deploy: SIGTERM; a crash: SIGKILL) or the network drops every connection (a
load balancer failover: "cut"). This table makes such a moment part of the
workload, so every transport meets the same fault at the same second.

    [faults]
    kind = ["restart-sigterm", "restart-sigkill", "cut"]   # a list sweeps
    at_s = 4.0        # seconds into the measurement window
    count = 1         # how many times
    every_s = 6.0     # between repeats (count > 1)
    down_s = 0.5      # restart: seconds between the old process gone and the new one started
    reconnect_min_s = 0.1   # the clients' back-off: exponential with full jitter,
    reconnect_max_s = 5.0   # between these (LoadSpec fields of the same names)

``kill-worker`` SIGKILLs one worker process of a server with workers behind a
broker (``[server] workers = 2, broker = "redis"``): the server goes on (its
parent restarts the worker); the killed worker's clients reconnect to another
worker and resume from their cursors, which every worker understands (the
epoch is the broker's): nothing lost, no reset.

A restart starts a new server process on the SAME port (clients reconnect to
the URL they know); the new process has a new epoch, so clients' cursors reset
(docs/DESIGN.md, "Faults"). A cut closes every connection at the network proxy
(duplexbench/netem/proxy.py, SIGUSR1), so the runner puts a proxy in the
subscribers' path for cut points even without a delay.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "FaultError", "FaultOptions", "loss_allowed", "parse_faults",
           "reset_allowed"]

#: Order = the order the sweep runs them in.
FAULT_KINDS = ("restart-sigterm", "restart-sigkill", "cut", "kill-worker")
#: Only a SIGKILL may lose acknowledged messages: what the killed process had
#: acknowledged but not yet written is gone (issue "graceful restart" point).
_LOSSY = ("restart-sigkill",)
#: Faults after which a client must resume where it was, never be reset: the epoch
#: survives them (a killed worker's cursors are the broker's, valid on every worker).
_RESUMING = ("kill-worker",)
_KEYS = ("kind", "at_s", "count", "every_s", "down_s", "reconnect_min_s", "reconnect_max_s")
#: A new server needs ~0.5-1 s to start (python, imports, bind, /healthz); repeats
#: closer than this would overlap the previous restart.
MIN_EVERY_S = 2.0


class FaultError(ValueError):
    """A ``[faults]`` table that cannot be run; the message names the key."""


@dataclass(frozen=True)
class FaultOptions:
    """The validated ``[faults]`` table; ``kind`` is a sweep like ``clients``."""

    kind: tuple[str, ...] = ("restart-sigterm",)
    at_s: float = 4.0
    count: int = 1
    every_s: float = 5.0
    down_s: float = 0.5
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 5.0

    def times(self) -> list[float]:
        """Seconds into the measurement at which each fault happens."""
        return [self.at_s + i * self.every_s for i in range(self.count)]

    def to_dict(self) -> dict:
        return {"kind": list(self.kind), "at_s": self.at_s, "count": self.count,
                "every_s": self.every_s, "down_s": self.down_s,
                "reconnect_min_s": self.reconnect_min_s, "reconnect_max_s": self.reconnect_max_s}

    def spec_fields(self) -> dict:
        """LoadSpec fields (clients/spec.py) the clients' reconnection takes from here."""
        return {"reconnect_min_s": self.reconnect_min_s, "reconnect_max_s": self.reconnect_max_s}


def loss_allowed(kind: str) -> bool:
    """Whether a point with this fault may lose messages without failing the run."""
    return kind in _LOSSY


def reset_allowed(kind: str) -> bool:
    """Whether a client may see a reset (a new epoch) after this fault without failing it."""
    return kind not in _RESUMING


def _number(table: dict, key: str, default: float, *, positive: bool = False) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise FaultError(f"key 'faults.{key}': expected a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise FaultError(f"key 'faults.{key}': expected a number of seconds "
                         f"{'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def parse_faults(table: object, duration_s: float) -> FaultOptions:
    """Validate a ``[faults]`` table against the scenario's measurement length."""
    if not isinstance(table, dict):
        raise FaultError(f"key 'faults': expected a table ([faults]), got {table!r}")
    unknown = [k for k in table if k not in _KEYS]
    if unknown:
        raise FaultError(f"unknown key 'faults.{unknown[0]}' (known keys: {', '.join(_KEYS)})")
    kinds = table.get("kind", list(FaultOptions.kind))
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if not kinds or any(k not in FAULT_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise FaultError(f"key 'faults.kind': expected one of {', '.join(map(repr, FAULT_KINDS))} "
                         f"or a list of them (each once), got {table.get('kind')!r}")
    count = table.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FaultError(f"key 'faults.count': expected a positive integer, got {count!r}")
    options = FaultOptions(
        kind=tuple(kinds),
        at_s=_number(table, "at_s", FaultOptions.at_s),
        count=count,
        every_s=_number(table, "every_s", FaultOptions.every_s, positive=True),
        down_s=_number(table, "down_s", FaultOptions.down_s),
        reconnect_min_s=_number(table, "reconnect_min_s", FaultOptions.reconnect_min_s,
                                positive=True),
        reconnect_max_s=_number(table, "reconnect_max_s", FaultOptions.reconnect_max_s,
                                positive=True),
    )
    if options.reconnect_max_s < options.reconnect_min_s:
        raise FaultError(f"key 'faults.reconnect_max_s': expected at least reconnect_min_s "
                         f"({options.reconnect_min_s:g}), got {options.reconnect_max_s:g}")
    if count > 1 and options.every_s < max(MIN_EVERY_S, options.down_s + MIN_EVERY_S):
        raise FaultError(f"key 'faults.every_s': expected at least down_s + {MIN_EVERY_S:g} s "
                         f"between repeated faults (a new server needs time to start), "
                         f"got {options.every_s:g}")
    last = options.times()[-1]
    # A client may draw the longest back-off (reconnect_max_s) just before the new server is
    # up: the measurement must still be running when it comes back, or it reads as unrecovered.
    need = last + options.down_s + options.reconnect_max_s + 1.0
    if need > duration_s:
        raise FaultError(f"key 'faults.at_s': the last fault (at {last:g} s, down {options.down_s:g} s) "
                         f"plus the longest back-off (reconnect_max_s = {options.reconnect_max_s:g} s) "
                         f"and 1 s must end before the measurement does: duration_s >= {need:g}, "
                         f"got {duration_s:g}")
    return options
