"""The report's HTTP/2 section: per transport and path, HTTP/2 ÷ HTTP/1.1 (docs/http2.md).

The question users bring ("does SSE over HTTP/2 make WebSocket unnecessary?") is a
comparison, and the machine is shared and noisy, so the figures are ratios of rows
measured side by side in one run: for each transport and path (nginx in front of the
aiohttp servers, or the Node reference direct), the HTTP/2 row over the HTTP/1.1 row
of the same load, TLS and stack. Only rows that can carry a comparison are used
(validity ok or server-saturated, nothing lost); a pair without both says why instead.
Server CPU per delivered message counts the front too where nginx is in the path
(what the deployment pays for a delivery).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..measure.validity import comparable
from .infra import Section

__all__ = ["RULE", "http2_rows", "sections"]

#: How the ratios are read (printed under the table).
RULE = ("Ratios are HTTP/2 ÷ HTTP/1.1 of rows measured in this run at the same load, TLS "
        "and server stack: below 1 HTTP/2 costs less. CPU per delivered message is the "
        "server's plus nginx's where nginx is in the path; IP bytes are down + up per "
        "delivered message. A pair is shown only when both rows are comparable (validity "
        "ok or server-saturated) and lost nothing.")


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _cpu_per_msg(row: pd.Series) -> float:
    delivered = _num(row.get("delivered"))
    cpu = _num(row.get("server_cpu_s"))
    proxy = _num(row.get("proxy_cpu_s"))
    if str(row.get("proxy") or "none") not in ("none", "nan") and math.isfinite(proxy):
        cpu += proxy
    return cpu / delivered * 1e6 if delivered > 0 else math.nan  # µs per message


def _ip_bytes(row: pd.Series) -> float:
    return _num(row.get("ip_bytes_down_per_msg")) + _num(row.get("ip_bytes_up_per_msg"))


def _usable(row: pd.Series) -> str:
    """'' when the row can carry a ratio, else why not."""
    if not comparable(row.get("validity")):
        return f"validity {row.get('validity')}"
    lost = _num(row.get("lost"))
    if not math.isfinite(lost) or lost > 0:
        return f"lost {row.get('lost')}"
    return ""


def _ratio(h2: float, h1: float) -> str:
    if not (math.isfinite(h2) and math.isfinite(h1)) or h1 <= 0:
        return "n/a"
    return f"{h2 / h1:.2f}"


def _path(row: pd.Series) -> str:
    proxy = str(row.get("proxy") or "none")
    return f"{row.get('stack') or 'python'} via nginx" if proxy not in ("none", "nan") \
        else f"{row.get('stack') or 'python'} direct"


def http2_rows(summary: pd.DataFrame) -> list[dict]:
    """One dict per (transport, path, load) with both versions measured: the ratios, or why not."""
    if summary is None or summary.empty or "http" not in summary.columns:
        return []
    frame = summary.copy()
    frame["http"] = frame["http"].astype(str).str.replace(r"\.0$", "", regex=True)
    frame["http"] = frame["http"].where(frame["http"] != "2.0", "2")
    if not (frame["http"] == "2").any():
        return []
    for column in ("stack", "proxy", "tls"):
        frame[column] = frame.get(column, pd.Series("", index=frame.index)).astype(str)
    keys = [k for k in ("transport", "stack", "proxy", "tls", "clients", "rate_msgs_s",
                        "payload_bytes") if k in frame.columns]
    out = []
    for _, group in frame.groupby(keys, sort=False):
        h1 = group[group["http"] == "1.1"]
        h2 = group[group["http"] == "2"]
        if h1.empty or h2.empty:
            continue
        a, b = h1.iloc[0], h2.iloc[0]
        why = "; ".join(f"HTTP/{v} row: {w}" for v, w in (("1.1", _usable(a)), ("2", _usable(b))) if w)
        entry = {"transport": a["transport"], "path": _path(a), "ws_over": "" if pd.isna(b.get("ws_over")) else str(b.get("ws_over")),
                 "why_not": why}
        pairs = {"cpu_us_per_msg": (_cpu_per_msg(b), _cpu_per_msg(a)),
                 "ip_bytes_per_msg": (_ip_bytes(b), _ip_bytes(a)),
                 "p50_ms": (_num(b.get("lat_p50_ms")), _num(a.get("lat_p50_ms"))),
                 "p99_ms": (_num(b.get("lat_p99_ms")), _num(a.get("lat_p99_ms")))}
        for name, (two, one) in pairs.items():
            entry[name] = (two, one)
            entry[name + "_ratio"] = "n/a" if why else _ratio(two, one)
        out.append(entry)
    return out


def _pair(values: tuple[float, float], fmt: str) -> str:
    two, one = values
    if not (math.isfinite(two) and math.isfinite(one)):
        return "n/a"
    return f"{fmt.format(one)} → {fmt.format(two)}"


def sections(runs: list[Any]) -> list[Section]:
    """The HTTP/2 section of the first run that measured both versions."""
    for run in runs:
        rows = http2_rows(getattr(run, "summary", None))
        if not rows:
            continue
        table = []
        for r in rows:
            transport = r["transport"] + (" (HTTP/1.1 upgrade: no RFC 8441)"
                                          if "no RFC 8441" in r["ws_over"] else "")
            cells = [transport, r["path"]]
            for name, fmt in (("cpu_us_per_msg", "{:.1f}"), ("ip_bytes_per_msg", "{:.0f}"),
                              ("p50_ms", "{:.2f}"), ("p99_ms", "{:.2f}")):
                cells.append(f"{r[name + '_ratio']} ({_pair(r[name], fmt)})")
            cells.append(r["why_not"] or "")
            table.append(tuple(cells))
        return [Section(
            "HTTP/2 against HTTP/1.1", (RULE,),
            ("transport", "path", "CPU µs/msg h2÷h1 (h1 → h2)", "IP B/msg h2÷h1 (h1 → h2)",
             "p50 h2÷h1 (ms)", "p99 h2÷h1 (ms)", "not comparable because"),
            tuple(table))]
    return []
