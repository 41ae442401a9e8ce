"""What the report says about the server itself: measured or not (and why), and what TLS costs.

An outside server (``run --server-url`` without ``--server-pid``) has no CPU or
memory figures: the summary leaves them empty and this module says so in
words, so an empty column is never read as "free". A run whose points have
``tls`` both on and off (scenarios/tls.toml) gets one sentence per transport
and load point: the extra server and load-generator CPU per delivered
message, and the extra bytes per message on the wire (TLS records), which
only TCP-level counters can show (the clients count decrypted bytes).
"""

from __future__ import annotations

import math

import pandas as pd

from .finding import Finding

__all__ = ["metadata_rows", "server_findings", "tls_costs"]

POINT = ["transport", "clients", "rate_msgs_s", "payload_bytes"]
#: Wire bytes per message including TLS records, from TCP_INFO (engine counters), if present.
WIRE_BYTES = ("ip_bytes_down_per_msg", "tcp_bytes_down_per_msg")


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


def metadata_rows(meta: dict) -> dict[str, str]:
    server = meta.get("server") or {}
    rows: dict[str, str] = {}
    if server.get("kind") == "external":
        pid = server.get("pid")
        rows["server"] = (f"outside server {server.get('url', '?')}, "
                          + (f"pid {pid} sampled (pinning not touched)" if server.get("measured")
                             else f"not measured: {server.get('not_measured', 'no --server-pid')}"))
        affinity = meta.get("affinity") or {}
        rows["affinity"] = (f"server: not pinned by duplexbench (outside server), load generator "
                            f"cores {affinity.get('loadgen', '?')}")
        probe = meta.get("probe") or {}
        rows["contract probe"] = (
            f"{probe.get('pass', 0)} rules pass, {probe.get('skip', 0)} skipped" if probe.get("ran")
            else f"not run ({probe.get('why', '?')})")
    tls = meta.get("tls")
    if tls:
        rows["tls"] = f"certificate: {tls.get('certificate', '?')}; clients verify it ({tls.get('ca_file', '')})"
    return rows


def tls_costs(summary: pd.DataFrame) -> list[dict]:
    """Per transport and load point with TLS on and off: the differences per delivered message."""
    if summary is None or summary.empty or "tls" not in summary.columns:
        return []
    frame = summary.copy()
    frame["tls"] = frame["tls"].map(_truthy)
    if "status" in frame.columns:
        frame = frame[frame["status"].fillna("ok").astype(str) != "failed"]
    if frame["tls"].nunique() < 2:
        return []
    delivered = frame["delivered"].where(frame["delivered"] > 0)
    frame["server_us"] = frame["server_cpu_s"] / delivered * 1e6
    frame["client_us"] = frame["client_cpu_s"] / delivered * 1e6
    wire = next((c for c in WIRE_BYTES if c in frame.columns and frame[c].notna().any()), None)
    cols = ["server_us", "client_us"] + ([wire] if wire else [])
    from ..measure.validity import comparable

    validity = frame["validity"] if "validity" in frame.columns else pd.Series("ok", index=frame.index)
    frame["_bad"] = [str(v) for v in validity.where(~validity.map(comparable), "")]
    med = frame.groupby(POINT + ["tls"], dropna=False)[cols].median().reset_index()
    bad = frame.groupby(POINT, dropna=False, sort=False)["_bad"].agg(
        lambda s: ", ".join(sorted({x for x in s if x})))
    out = []
    for key, group in med.groupby(POINT, dropna=False, sort=False):
        on, off = group[group["tls"]], group[~group["tls"]]
        if on.empty or off.empty:
            continue
        row = dict(zip(POINT, key))
        row["not_comparable"] = bad.get(key, "")
        for col in cols:
            a, b = float(on[col].iloc[0]), float(off[col].iloc[0])
            row[f"{col}_off"], row[f"{col}_extra"] = b, a - b
        row["wire_column"] = wire
        out.append(row)
    return out


def _us(value: float, base: float) -> str:
    if math.isnan(value):
        return "not measured"
    pct = f" ({value / base * 100:+.0f}%)" if base and not math.isnan(base) and base > 0 else ""
    return f"{value:+.1f} µs{pct}"


def server_findings(run) -> list[Finding]:
    meta, summary = run.meta, run.summary
    found: list[Finding] = []
    server = meta.get("server") or {}
    if server.get("kind") == "external" and not server.get("measured"):
        found.append(Finding(
            f"Server CPU and memory: not measured: {server.get('not_measured', 'no --server-pid')} "
            "(pass --server-pid PID to sample them; pinning is never touched).", kind="note"))
    if server.get("kind") == "external" and server.get("measured"):
        found.append(Finding(
            "The outside server was sampled by its pid but not restarted between points (as "
            "duplexbench's own servers are): its memory figures carry the heap of earlier points, "
            "so compare them across transports with care.", kind="note"))
    for row in tls_costs(summary):
        where = (f"{int(row['clients'])} subscribers, {row['rate_msgs_s']:g} msg/s, "
                 f"{int(row['payload_bytes'])} B")
        wire = row.get("wire_column")
        extra_bytes = (f"{row[f'{wire}_extra']:+.1f} B per message on the wire (TLS records)"
                       if wire else "extra bytes on the wire not measured (needs the TCP-level "
                                    "byte counters; the clients count decrypted bytes)")
        found.append(Finding(
            f"TLS on {row['transport']} ({where}): server CPU {_us(row['server_us_extra'], row['server_us_off'])}"
            f" and load-generator CPU {_us(row['client_us_extra'], row['client_us_off'])} per delivered "
            f"message; {extra_bytes}"
            + (f" (not comparable: {row['not_comparable']}: the CPU figures do not describe the "
               "server alone)" if row.get("not_comparable") else "") + ".", metric="tls", kind="note"))
    return found
