"""Can a load point carry a conclusion? One pure classifier, one set of thresholds.

Every point (a summary row) gets ``validity``, the most severe of:

=====================  ======================================================
``failed``             no measurement (a crash, a timeout) or client errors
``empty``              the measurement window holds no delivered message
``lost``               messages never delivered (where the scenario expects none)
``loadgen-saturated``  the load generator was above 90 % of its cores: the
                       figures describe the client, not the server
``both-saturated``     load generator and server both above 90 %
``server-saturated``   the server above 90 % of its core: a real server limit
``late``               deliveries arrived after the drain bound (not lost)
``few-samples``        fewer than 100 latency samples: p99 is the maximum
``ok``                 none of the above
=====================  ======================================================

and ``validity_notes``: the other conditions that also hold, each with its
figure. Only ``ok`` and ``server-saturated`` points are :func:`comparable`:
a transport comparison (findings, claims, capacity, compare, the notebook)
uses only those and says why when it cannot.

The thresholds live here and nowhere else. 90 % of a core: above it a
process's own queueing dominates what it measures (the pyperf / wrk2 rule of
thumb; a sampled share has ~1-2 % noise at 20 Hz over seconds). 100 samples:
the nearest-rank p99 of fewer is the maximum (metrics.MIN_SAMPLES).

A load generator that cannot produce its load is saturated too, whatever its
CPU share says (on a machine shared with other work a saturated process may
get well under 90 % of a core): when the publisher sent fewer messages than its
schedule asked for in the window (``rate_msgs_s`` x ``duration_s``, less 10 %
or 3 standard deviations of a Poisson count, whichever is more) and the server
was not saturated and no publish failed, the point is ``loadgen-saturated``.
(A server that back-pressures the publisher because *the load generator's
subscribers* read too slowly is the same case: the client could not keep up.)

Near saturation is a note, not a validity: a process above 80 % of its core
(and not above 90 %) still measures mostly the other side, but its own queueing
starts to show (M/M/1: at 80 % busy a request waits 4 service times on average,
at 50 % one). The note says so with the figure ("near saturation (server at
85 %, > 80 %)"), and the findings repeat it for a compared transport.

The server's core may hold more than the server: workers behind a broker
share it with Redis (duplexbench/broker/extension.py), whose CPU is sampled
apart. The row's ``server_core_cpu_pct`` (server + broker) then judges the
server side's saturation and near saturation, since the core is what fills up.

The load generator may run on several cores (``--loadgen-procs``): its
``client_cpu_pct`` (% of one core, summed over its processes) is divided by
``loadgen_cores`` (the cores it could use, 1 when the row does not say).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COMPARABLE",
    "MIN_SAMPLES",
    "NEAR_SATURATED_PCT",
    "SATURATED_PCT",
    "SEVERITY",
    "Validity",
    "classify",
    "comparable",
    "loadgen_pct_per_core",
    "near_saturation",
    "publish_shortfall",
    "server_core_pct",
    "validity_column",
]

#: Most severe first.
SEVERITY: tuple[str, ...] = (
    "failed", "empty", "lost", "loadgen-saturated", "both-saturated", "server-saturated",
    "late", "few-samples", "ok",
)
#: A process above this share of a core measures its own queueing.
SATURATED_PCT = 90.0
#: Above this share of a core (up to SATURATED_PCT) a process is near saturation: a note.
NEAR_SATURATED_PCT = 80.0
#: Fewest latency samples for a p99 that is not the maximum in disguise.
MIN_SAMPLES = 100
#: A publisher short of its schedule by more than this share (or 3 sd) could not keep up.
SHORTFALL = 0.10
#: Fewest scheduled messages for the shortfall rule (fewer: the count says too little).
SHORTFALL_MIN_SCHEDULED = 100
#: Validities whose figures describe the server: the only ones compared across transports.
COMPARABLE = frozenset({"ok", "server-saturated"})


@dataclass(frozen=True)
class Validity:
    """``validity`` (the most severe condition) and ``notes`` (the others, with figures)."""

    validity: str
    notes: str = ""

    @property
    def comparable(self) -> bool:
        return self.validity in COMPARABLE


def _num(row: Mapping[str, Any], key: str) -> float:
    try:
        value = float(row.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value


def loadgen_pct_per_core(row: Mapping[str, Any]) -> float:
    """The load generator's CPU as % of each of its cores (NaN when unknown)."""
    pct = _num(row, "client_cpu_pct")
    cores = _num(row, "loadgen_cores")
    if not cores > 0:
        cores = 1.0
    return pct / cores


def near_saturation(row: Mapping[str, Any]) -> list[str]:
    """'near saturation (server at 85 %, > 80 %)' per process above NEAR_SATURATED_PCT but
    not above SATURATED_PCT (server, load generator per core); [] when neither is."""
    notes = []
    server_who, server = server_core_pct(row)
    for who, pct in ((server_who, server), ("load generator", loadgen_pct_per_core(row))):
        if NEAR_SATURATED_PCT < pct <= SATURATED_PCT:
            notes.append(f"near saturation ({who} at {pct:.0f} %, > {NEAR_SATURATED_PCT:.0f} %)")
    return notes


def server_core_pct(row: Mapping[str, Any]) -> tuple[str, float]:
    """Who holds the server's core and its share: ``("server", server_cpu_pct)``, or, when a
    helper shares the server's core (the broker of workers behind Redis, pinned beside them:
    ``server_core_cpu_pct`` = workers + Redis), that sum when it is higher: the core is
    what saturates, whichever process of the server side is busy on it."""
    server = _num(row, "server_cpu_pct")
    core = _num(row, "server_core_cpu_pct")
    if core > server or (math.isnan(server) and not math.isnan(core)):
        return "server core (server + broker)", core
    return "server", server


def publish_shortfall(row: Mapping[str, Any]) -> str:
    """'published N of M scheduled messages' when the publisher fell behind, else ''."""
    scheduled = _num(row, "rate_msgs_s") * _num(row, "duration_s")
    sent = _num(row, "sent")
    if not scheduled >= SHORTFALL_MIN_SCHEDULED or not sent >= 0 or _num(row, "publish_failed") > 0:
        return ""
    if sent < scheduled - max(SHORTFALL * scheduled, 3 * math.sqrt(scheduled)):
        return (f"the publisher sent {sent:,.0f} of {scheduled:,.0f} scheduled messages: "
                "the load generator could not produce its load")
    return ""


def classify(row: Mapping[str, Any], *, expect_loss: bool = False) -> Validity:
    """The validity of one summary row (a dict or a pandas row); pure."""
    found: list[tuple[str, str]] = []
    status = str(row.get("status") or "ok")
    errors = _num(row, "errors")
    # A fault point (a restart or a cut, [faults]) causes client errors on purpose: refused
    # connections and resets while the server is away. Recovery and loss judge it instead.
    fault = str(row.get("fault") or "")
    if fault and fault != "nan" and errors > 0 and status not in ("failed", "error"):
        found.append(("note", f"{errors:.0f} client errors during the {fault} (expected)"))
    elif status in ("failed", "error") or errors > 0:
        why = "no measurement" if status == "failed" else "client errors"
        found.append(("failed", why))
    delivered = _num(row, "delivered")
    samples = _num(row, "lat_samples")
    if status != "failed" and not (delivered > 0 and samples > 0):
        found.append(("empty", "no delivered message in the measurement window"))
    lost = _num(row, "lost")
    if lost > 0:
        expected = _num(row, "expected")
        share = f" of {expected:.0f}" if expected > 0 else ""
        if not expect_loss:
            found.append(("lost", f"{lost:.0f}{share} messages never delivered"))
        else:
            found.append(("note", f"{lost:.0f}{share} lost (the scenario expects loss)"))
    client = loadgen_pct_per_core(row)
    server_who, server = server_core_pct(row)
    client_hot = client > SATURATED_PCT
    server_hot = server > SATURATED_PCT
    short = publish_shortfall(row)
    if short and not server_hot and not client_hot:
        found.append(("loadgen-saturated", short))
    elif client_hot and server_hot:
        found.append(("both-saturated",
                      f"load generator {client:.0f}% and {server_who} {server:.0f}% of a core"))
    elif client_hot:
        found.append(("loadgen-saturated", f"load generator {client:.0f}% of a core"))
    elif server_hot:
        found.append(("server-saturated", f"{server_who} {server:.0f}% of a core"))
    found += [("note", text) for text in near_saturation(row)]
    unpublished = _num(row, "publish_failed")
    if unpublished > 0:  # never published: neither delivered nor counted as lost
        found.append(("note", f"{unpublished:.0f} publishes failed"))
    late = _num(row, "late")
    if late > 0:
        found.append(("late", f"{late:.0f} deliveries after the drain bound"))
    if samples > 0 and samples < MIN_SAMPLES:
        found.append(("few-samples", f"{samples:.0f} latency samples (p99 needs {MIN_SAMPLES})"))
    ranked = sorted((f for f in found if f[0] != "note"), key=lambda f: SEVERITY.index(f[0]))
    if not ranked:
        return Validity("ok", "; ".join(text for _, text in found))
    main = ranked[0]
    notes = [f"{main[1]}"] + [f"{name}: {text}" if name != "note" else text
                              for name, text in found if (name, text) != main]
    return Validity(main[0], "; ".join(notes))


def comparable(validity: Any) -> bool:
    """True for validities whose figures describe the server (``ok``, ``server-saturated``)."""
    return str(validity) in COMPARABLE


def validity_column(frame: Any) -> Any:
    """The ``validity`` of every row of a summary frame: the stored column when the run
    has one, classified from the row otherwise (runs written before schema 2)."""
    import pandas as pd

    if "validity" in frame.columns:
        stored = frame["validity"].astype(object)
        if stored.notna().all() and (stored != "").all():
            return stored
    return pd.Series([classify(row).validity for row in frame.to_dict("records")],
                     index=frame.index, dtype=object)
