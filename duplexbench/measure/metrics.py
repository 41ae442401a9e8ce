"""From one load point's raw output to one summary row, engine-agnostic.

Every engine (the native asyncio load generator, Locust) writes the same
``counters.json`` and ``samples.parquet`` (DESIGN.md), and the runner samples
the processes into a load frame; this module turns those three into the row
of ``summary.csv`` and the tidy samples frame of ``samples.parquet``. Keeping
the arithmetic here, pure and tested, means a transport's cost is computed
one way whatever produced it.

Percentiles use the nearest-rank definition (:func:`nearest_rank`): every
reported percentile is a latency that was actually observed, as
HdrHistogram and wrk2 report them.

counters.json fields read here (missing ones count as 0 / unknown)::

    published, expected, delivered, lost, duplicated, reordered,
    reconnects, errors (int, or a list of messages), message_bytes,
    message_bytes_up (mean size of a measured message as sent up: the WebSocket
        publish frame's payload, or the POST body; absent = message_bytes),
    messages_up_on_sub (messages that travelled up subscriber connections: a count,
        or true meaning every published message did),
    measure_start_ns, measure_end_ns, clock,
    late (deliveries after the drain bound; absent = not reported -> empty column),
    tcp: {"sub": {bytes_acked, bytes_received, segs_out, segs_in}, "pub": {...}}
        (TCP_INFO over the measurement window), ip_header_bytes,
    wire: {"sub": {bytes_up, bytes_down, http_requests, connections, reconnects, errors},
           "pub": {...same...}}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..scenario import LoadPoint, Scenario
from .results import SUMMARY_COLUMNS
from .validity import MIN_SAMPLES as _P99_SAMPLES
from .validity import SATURATED_PCT, classify, loadgen_pct_per_core

__all__ = [
    "LOADGEN_CPU_WARN_PCT",
    "cpu_us_per_msg",
    "MIN_SAMPLES",
    "PERCENTILES",
    "PERCENTILE_METHOD",
    "IP_HEADER_BYTES",
    "ip_figures",
    "latency_stats",
    "nearest_rank",
    "process_stats",
    "row_warnings",
    "summarize_point",
    "tidy_samples",
]

PERCENTILES = (50, 90, 99, 99.9)
#: Nearest rank: each percentile is an observed latency (see :func:`nearest_rank`).
PERCENTILE_METHOD = "nearest-rank"
#: Fewest samples for a percentile to be more than the maximum in disguise.
MIN_SAMPLES = {"p99": _P99_SAMPLES, "p999": 1000}
#: Above this, the load generator, not the server, may be what was measured (validity.py).
LOADGEN_CPU_WARN_PCT = SATURATED_PCT
#: Assumed IPv4 + TCP header bytes per segment (see :func:`ip_figures`).
IP_HEADER_BYTES = 52

_NAN = float("nan")


def _key(percentile: float) -> str:
    return "p" + f"{percentile:g}".replace(".", "")  # 99.9 -> p999


# ---------------------------------------------------------------------------
# Latency


def nearest_rank(values: np.ndarray, percentiles: tuple[float, ...]) -> np.ndarray:
    """The value at rank ceil(p/100 * n) of the sorted values (p99.9 of 1000 is the 999th).

    Computed here rather than with numpy's ``inverted_cdf``, which rounds
    0.999 * 1000 up to 1000 and so returns the maximum.
    """
    ordered = np.sort(np.asarray(values, dtype=float))
    n = ordered.size
    # The epsilon absorbs binary rounding of p/100 * n (999.0000000000001 -> 999).
    ranks = np.ceil(np.asarray(percentiles, dtype=float) / 100 * n - 1e-9).astype(int)
    return ordered[np.clip(ranks, 1, n) - 1]


def latency_stats(values_ms: np.ndarray, prefix: str) -> dict[str, float]:
    """``{prefix}_p50_ms … _p999_ms, _max_ms, _mean_ms`` and ``{prefix}_samples``.

    NaN values are dropped (a sample without a send time); an empty array gives
    NaN statistics and 0 samples.
    """
    values = np.asarray(values_ms, dtype=float)
    values = values[~np.isnan(values)]
    stats: dict[str, float] = {}
    if values.size:
        for p, v in zip(PERCENTILES, nearest_rank(values, PERCENTILES)):
            stats[f"{prefix}_{_key(p)}_ms"] = float(v)
        stats[f"{prefix}_max_ms"] = float(values.max())
        stats[f"{prefix}_mean_ms"] = float(values.mean())
    else:
        for p in PERCENTILES:
            stats[f"{prefix}_{_key(p)}_ms"] = _NAN
        stats[f"{prefix}_max_ms"] = _NAN
        stats[f"{prefix}_mean_ms"] = _NAN
    stats[f"{prefix}_samples"] = int(values.size)
    return stats


def tidy_samples(raw: pd.DataFrame, point: LoadPoint, counters: dict) -> pd.DataFrame:
    """Engine samples (subscriber, seq, index, intended_ns, sent_ns, recv_ns) -> samples.parquet rows.

    Only messages scheduled inside the measurement window are kept (when the
    counters give one), so warm-up and drain traffic never reach a percentile.
    """
    start = counters.get("measure_start_ns")
    end = counters.get("measure_end_ns")
    frame = raw
    if len(frame) and "intended_ns" in frame and start and end:
        scheduled = frame["intended_ns"]
        frame = frame[(scheduled >= start) & (scheduled < end)]
    recv = _column(frame, "recv_ns")
    # Locust-style engines may not know the intended time: fall back to the send time.
    intended = _column(frame, "intended_ns") if "intended_ns" in frame else _column(frame, "sent_ns")
    sent = _column(frame, "sent_ns")
    origin = start if start else (np.nanmin(recv) if recv.size else 0.0)
    n = len(frame)
    return pd.DataFrame({
        "point": np.full(n, point.index, dtype=np.int32),
        "repeat": np.full(n, point.repeat, dtype=np.int32),
        "transport": pd.Series([point.transport] * n, dtype=object),
        "subscriber": _column(frame, "subscriber", np.int64, -1),
        "seq": _column(frame, "seq", np.int64, -1),
        "latency_ms": (recv - intended) / 1e6,
        "latency_sent_ms": (recv - sent) / 1e6,
        "recv_s": (recv - origin) / 1e9,
    })


def _column(frame: pd.DataFrame, name: str, dtype: Any = float, missing: Any = _NAN) -> np.ndarray:
    if name in frame:
        # float64 holds monotonic ns exactly enough (2^53 ns ≈ 104 days of uptime
        # at 1 ns; beyond that sub-µs rounding, irrelevant for ms latencies).
        return frame[name].to_numpy(dtype=dtype, na_value=missing) if dtype is float \
            else frame[name].fillna(missing).to_numpy(dtype=dtype)
    return np.full(len(frame), missing, dtype=dtype)


# ---------------------------------------------------------------------------
# Process load


def process_stats(load: pd.DataFrame, process: str) -> dict[str, float]:
    """CPU seconds and % of one core over the measure phase, max RSS (MiB) and connections.

    Rows of ``process`` in phase ``measure`` (all its rows when none are
    labelled). CPU times are cumulative per process, so a ``pid`` column (several
    Locust workers) is handled by summing per-pid deltas. ``cpu_s`` comes from
    ``cpu_sched_s`` (nanoseconds from schedstat) when the samples have it;
    ``cpu_tick_s`` is the same span from 10 ms clock ticks, kept as a cross-check.
    """
    empty = {"cpu_s": _NAN, "cpu_pct": _NAN, "cpu_tick_s": _NAN, "rss_mib_max": _NAN,
             "connections_max": _NAN}
    if load is None or not len(load) or "process" not in load:
        return empty
    rows = load[load["process"] == process]
    if "phase" in rows and (rows["phase"] == "measure").sum() >= 2:
        rows = rows[rows["phase"] == "measure"]
    if not len(rows):
        return empty
    if "t_s" in rows:
        rows = rows.sort_values("t_s", kind="stable")
    tick_s = sched_s = wall = _NAN
    if {"cpu_user_s", "cpu_system_s", "t_s"} <= set(rows.columns) and len(rows) >= 2:
        groups = rows.groupby("pid", sort=False) if "pid" in rows else [(None, rows)]
        tick_s, sched_s, wall = 0.0, 0.0, 0.0
        for _, group in groups:
            cpu = group["cpu_user_s"] + group["cpu_system_s"]
            tick_s += float(cpu.iloc[-1] - cpu.iloc[0])
            if "cpu_sched_s" in group and group["cpu_sched_s"].notna().all():
                sched = group["cpu_sched_s"].astype(float)
                sched_s += float(sched.iloc[-1] - sched.iloc[0])
            else:
                sched_s = _NAN
            wall = max(wall, float(group["t_s"].iloc[-1] - group["t_s"].iloc[0]))
    cpu_s = sched_s if not np.isnan(sched_s) else tick_s
    cpu_pct = cpu_s / wall * 100 if wall and wall > 0 else _NAN
    if "rss_mib" in rows:
        rss = _max(rows, "rss_mib")
    else:  # load series of schema 1: MB (10^6 bytes)
        rss = _max(rows, "rss_mb") * 1e6 / 2**20
    return {
        "cpu_s": cpu_s,
        "cpu_pct": cpu_pct,
        "cpu_tick_s": tick_s,
        "rss_mib_max": rss,
        "connections_max": _max(rows, "connections"),
    }


def _max(frame: pd.DataFrame, column: str) -> float:
    if column not in frame or frame[column].isna().all():
        return _NAN
    return float(frame[column].max())


# ---------------------------------------------------------------------------
# The summary row


def _wire(counters: dict, role: str) -> dict | None:
    wire = counters.get("wire") or counters.get("wire_stats") or {}
    stats = wire.get(role)
    return stats if isinstance(stats, dict) else None


def _count(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return len(value)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _messages_up(value: Any, sent: int) -> int:
    """Messages that travelled up subscriber connections: a count, or a flag meaning all."""
    if isinstance(value, bool):  # True: every published message went up a subscriber socket
        return sent if value else 0
    return _count(value)


def _per(numerator: Any, denominator: float) -> float:
    if numerator is None or not denominator:
        return _NAN
    return float(numerator) / denominator


def ip_figures(counters: dict, delivered: int) -> dict[str, float]:
    """Bytes and segments per delivered message as the kernel counted them (TCP_INFO).

    ``counters["tcp"]["sub"]`` sums every subscriber socket over the measurement
    window: ``bytes_received`` / ``segs_in`` (down), ``bytes_acked`` /
    ``segs_out`` (up). IP bytes = payload + segments x header bytes, pure ACKs
    included (they are segments). The header size is ``ip_header_bytes`` when
    the engine says, else 52: IPv4 20 + TCP 20 + the timestamp option 12, which
    Linux sends on every segment by default (net.ipv4.tcp_timestamps=1) and
    127.0.0.1 carries no link-layer header worth counting. Empty (NaN, never 0)
    without TCP_INFO counts.
    """
    tcp = counters.get("tcp") if isinstance(counters.get("tcp"), dict) else {}
    sub = tcp.get("sub") if isinstance(tcp.get("sub"), dict) else None
    figures = {"ip_bytes_down_per_msg": _NAN, "ip_bytes_up_per_msg": _NAN,
               "segments_down_per_msg": _NAN, "segments_up_per_msg": _NAN}
    if not sub or not delivered:
        return figures
    header = counters.get("ip_header_bytes") or IP_HEADER_BYTES
    try:
        down_bytes, up_bytes = float(sub["bytes_received"]), float(sub["bytes_acked"])
        segs_in, segs_out = float(sub["segs_in"]), float(sub["segs_out"])
    except (KeyError, TypeError, ValueError):
        return figures
    figures.update(
        ip_bytes_down_per_msg=(down_bytes + segs_in * header) / delivered,
        ip_bytes_up_per_msg=(up_bytes + segs_out * header) / delivered,
        segments_down_per_msg=segs_in / delivered,
        segments_up_per_msg=segs_out / delivered,
    )
    return figures


def cpu_us_per_msg(cpu_pct: Any, throughput_msgs_s: Any) -> float:
    """Microseconds of CPU per delivered message: the CPU rate over the rate of deliveries.

    ``cpu_pct`` is CPU seconds over the wall time between the first and last process sample
    of the measured phase (20 Hz); ``throughput_msgs_s`` is deliveries of the measurement
    window over its duration. Equal to ``cpu_s / delivered x 1e6`` when the two spans
    coincide; as a ratio of rates it is not biased by their mismatch (the sampled span is up
    to two sample intervals, 0.1 s, shorter than the window: 4 % of a 2.5 s window, as much as
    the regressions the gate must see). NaN (never 0) without a figure or a delivery.
    """
    try:
        pct, rate = float(cpu_pct), float(throughput_msgs_s)
    except (TypeError, ValueError):
        return _NAN
    if not (np.isfinite(pct) and np.isfinite(rate)) or rate <= 0:
        return _NAN
    return pct / 100 / rate * 1e6


def summarize_point(*, run_id: str, scenario: Scenario, point: LoadPoint, engine: str,
                    counters: dict, samples: pd.DataFrame, load: pd.DataFrame,
                    loadgen_procs: int | None = None,
                    loadgen_cores: int | None = None,
                    loadgen_hint: str = "") -> tuple[dict, pd.DataFrame]:
    """The summary.csv row (every SUMMARY_COLUMNS key, in order) and samples.parquet rows.

    ``loadgen_procs`` / ``loadgen_cores``: the load generator's processes and the
    cores they could use (the validity of its CPU share; 1 when not given);
    ``loadgen_hint``: what adds load-generator capacity on this machine.
    """
    tidy = tidy_samples(samples if samples is not None else pd.DataFrame(), point, counters)
    start, end = counters.get("measure_start_ns"), counters.get("measure_end_ns")
    duration = (end - start) / 1e9 if start and end and end > start else scenario.duration_s

    sent = _count(counters.get("published", counters.get("sent")))
    delivered = _count(counters.get("delivered"))
    message_bytes = counters.get("message_bytes")
    message_bytes = float(message_bytes) if message_bytes is not None else _NAN
    # A message goes up in another form than it comes down (WebSocket: the publish
    # frame {"ts":..,"data":..}, no seq or topic): subtract what was actually sent up.
    # Engines that do not say (Locust output) fall back to the envelope size.
    message_bytes_up = counters.get("message_bytes_up")
    message_bytes_up = float(message_bytes_up) if message_bytes_up is not None else message_bytes
    sub = _wire(counters, "sub") or {}
    pub = _wire(counters, "pub")
    up_msgs = _messages_up(counters.get("messages_up_on_sub"), sent)

    bytes_down = _per(sub.get("bytes_down"), delivered)
    bytes_up = _per(sub.get("bytes_up"), delivered)
    # Message bytes that travel up a subscriber connection (WS echo/chat) are
    # payload, not overhead; amortised over deliveries like the bytes themselves.
    up_payload = message_bytes_up * up_msgs / delivered if delivered and up_msgs else 0.0
    reconnects = counters.get("reconnects")
    if reconnects is None:
        reconnects = sum(_count((_wire(counters, r) or {}).get("reconnects")) for r in ("sub", "pub"))
    errors = _count(counters.get("errors"))

    server = process_stats(load, "server")
    client = process_stats(load, "loadgen")
    network_delay = point.delay_ms

    row: dict[str, Any] = {
        "run_id": run_id,
        "scenario": scenario.name,
        "engine": engine,
        "transport": point.transport,
        "point": point.index,
        "repeat": point.repeat,
        "clients": point.clients,
        "rate_msgs_s": point.rate,
        "payload_bytes": point.payload_bytes,
        "message_bytes": message_bytes,
        "delay_ms": network_delay,
        "keepalive": point.keepalive,
        "workers": getattr(point, "workers", 1),
        "broker": getattr(point, "broker", "none"),
        "pattern": getattr(point, "pattern", "") or scenario.pattern,
        "upstream": scenario.upstream,
        "duration_s": duration,
        "sent": sent,
        "expected": _count(counters.get("expected")),
        "delivered": delivered,
        "lost": _count(counters.get("lost")),
        # Empty, never 0, when the engine does not report it: 0 would claim a measurement.
        "late": _count(counters["late"]) if counters.get("late") is not None else _NAN,
        "duplicated": _count(counters.get("duplicated")),
        "reordered": _count(counters.get("reordered")),
        "throughput_msgs_s": delivered / duration if duration > 0 else _NAN,
    }
    lat = latency_stats(tidy["latency_ms"].to_numpy(), "lat")
    row.update(lat)
    sent_stats = latency_stats(tidy["latency_sent_ms"].to_numpy(), "sent")
    sent_stats.pop("sent_samples")  # the same deliveries; one count column is enough
    row.update(sent_stats)
    row.update({
        "server_cpu_s": server["cpu_s"],
        "server_cpu_pct": server["cpu_pct"],
        "server_cpu_tick_s": server["cpu_tick_s"],
        "server_rss_mib_max": server["rss_mib_max"],
        "server_connections_max": server["connections_max"],
        "bytes_down_per_msg": bytes_down,
        "bytes_up_per_msg": bytes_up,
        "overhead_down_per_msg": bytes_down - message_bytes,
        "overhead_up_per_msg": bytes_up - up_payload,
        **ip_figures(counters, delivered),
        "http_requests_per_msg": _per(sub.get("http_requests"), delivered),
        "pub_bytes_up_per_msg": _per(pub.get("bytes_up"), sent) if pub else _NAN,
        "pub_http_requests_per_msg": _per(pub.get("http_requests"), sent) if pub else _NAN,
        "reconnects": _count(reconnects),
        "client_cpu_s": client["cpu_s"],
        "client_cpu_pct": client["cpu_pct"],
        "client_cpu_tick_s": client["cpu_tick_s"],
        "loadgen_procs": loadgen_procs if loadgen_procs else _NAN,
        "loadgen_cores": loadgen_cores if loadgen_cores else _NAN,
        "errors": errors,
        "server_cpu_us_per_msg": cpu_us_per_msg(server["cpu_pct"], row["throughput_msgs_s"]),
        "client_cpu_us_per_msg": cpu_us_per_msg(client["cpu_pct"], row["throughput_msgs_s"]),
    })
    warnings = row_warnings(row, scenario, errors=errors, loadgen_hint=loadgen_hint)
    row["status"] = _status(row, scenario, errors)
    judged = classify(row, expect_loss=scenario.expect_loss)
    row["validity"], row["validity_notes"] = judged.validity, judged.notes
    row["warnings"] = "; ".join(warnings)
    # .get: columns added by the runner's hooks (infra.row_fields) are filled after this.
    return {column: row.get(column) for column in SUMMARY_COLUMNS}, tidy


def _status(row: dict, scenario: Scenario, errors: int) -> str:
    if errors:
        return "error"
    if row.get("lost", 0) and not scenario.expect_loss:
        return "lost"
    return "ok"


def _number(row: dict, key: str) -> float:
    value = row.get(key)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return _NAN
    return value


def row_warnings(row: dict, scenario: Scenario | None = None, *,
                 errors: int | None = None, loadgen_hint: str = "") -> list[str]:
    """What went wrong in a summary row and what to do about it (pyperf-style).

    Without a scenario, lost messages are reported (as if ``expect_loss`` were
    false); ``errors`` defaults to the row's ``errors`` value when it has one.
    """
    warnings: list[str] = []
    if errors is None:
        errors = _count(row.get("errors"))
    lost = _number(row, "lost")
    expect_loss = scenario.expect_loss if scenario is not None else False
    if lost > 0 and not expect_loss:
        expected = _number(row, "expected")
        share = f" ({lost / expected:.2%})" if expected > 0 else ""
        warnings.append(
            f"LOST {lost:.0f} of {expected:.0f} messages{share}: the scenario expects none: "
            "check reconnects and slow-consumer drops (server queue_limit), or lower the rate"
        )
    client_pct = loadgen_pct_per_core(row)
    server_pct = _number(row, "server_cpu_pct")
    hint = loadgen_hint or "lower the rate or clients"
    if client_pct > LOADGEN_CPU_WARN_PCT and server_pct > LOADGEN_CPU_WARN_PCT:
        warnings.append(
            f"the load generator used {client_pct:.0f}% of a core and the server "
            f"{server_pct:.0f}%: both were saturated, so this point measures neither alone"
        )
    elif client_pct > LOADGEN_CPU_WARN_PCT:
        warnings.append(
            f"the load generator used {client_pct:.0f}% of its core(s): the server was not the "
            f"bottleneck; {hint}"
        )
    samples = _number(row, "lat_samples")
    delivered = _number(row, "delivered")
    if not samples > 0:
        if delivered > 0 or _number(row, "expected") > 0:
            warnings.append(
                "no latency samples: the load generator recorded no deliveries in the "
                "measurement window; percentiles are empty"
            )
    elif samples < MIN_SAMPLES["p99"]:
        warnings.append(
            f"p99 from {samples:.0f} samples is the maximum in disguise (p99 needs >= "
            f"{MIN_SAMPLES['p99']}, p99.9 >= {MIN_SAMPLES['p999']}): "
            "run longer, at a higher rate or with more clients"
        )
    elif samples < MIN_SAMPLES["p999"]:
        warnings.append(
            f"p99.9 from {samples:.0f} samples is the maximum in disguise (p99.9 needs >= "
            f"{MIN_SAMPLES['p999']}): run longer, at a higher rate or with more clients"
        )
    reconnects = _number(row, "reconnects")
    if reconnects > 0:
        warnings.append(
            f"{reconnects:.0f} reconnects: connections were dropped (slow consumer, timeout or "
            "error) and resumed; latency includes the gaps"
        )
    if errors > 0:
        warnings.append(
            f"{errors} client errors: see the load generator's output; the point is not trustworthy"
        )
    return warnings
