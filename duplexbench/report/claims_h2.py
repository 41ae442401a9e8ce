"""The HTTP/2 claims, measured: long polling's header bytes per message (HPACK), and the
connections one browser page needs (six per origin over HTTP/1.1, one over HTTP/2).

RFC 6202 §2.2 and the article charge long polling "an HTTP header per message"; RFC 7541
(HPACK) says HTTP/2 sends a repeated header set as a few index bytes. Each path of the
run that measured long polling over both versions (nginx in front of the aiohttp
servers, the Node reference direct) gets a row: overhead per delivered message (bytes
beyond the message, up + down) in TCP payload and at the IP level, HTTP/1.1 beside
HTTP/2, and their ratio. Only comparable rows that lost nothing are used.

The connection claim reads the browser engine's count of the TCP connections Chromium held
to the origin (``origin_connections``, engines/browser/connections.py) on every browser row,
whatever its validity: a page whose requests queue behind the limit is the evidence.
"""

from __future__ import annotations

import math

import pandas as pd

from .claims_common import claim_row
from .infra import CHROMIUM_PER_ORIGIN

__all__ = ["CONNECTIONS_RULE", "HPACK_MAX_RATIO", "HPACK_RULE", "connection_rows", "hpack_rows"]

#: "Confirmed": HTTP/2's overhead per message in TCP payload at most this share of HTTP/1.1's.
HPACK_MAX_RATIO = 0.5
HPACK_RULE = (f"HPACK (RFC 7541): long polling's overhead per delivered message (TCP payload, "
              f"up + down, beyond the message) under HTTP/2 at most {HPACK_MAX_RATIO:g} × "
              "HTTP/1.1's on the same path, load and TLS. Ratio = HTTP/2 ÷ HTTP/1.1.")


CONNECTIONS_RULE = (
    "Connections per page (RFC 9113 §5 multiplexing against Chromium's "
    f"{CHROMIUM_PER_ORIGIN} HTTP/1.1 connections per origin): with more long polls or "
    "EventSources on one page than that, the most TCP connections the browser held to the "
    f"origin at once is {CHROMIUM_PER_ORIGIN} over HTTP/1.1 and 1 over HTTP/2 (counted from "
    "the browser's sockets while the point ran). Ratio = HTTP/2 ÷ HTTP/1.1.")
_SUBSCRIPTIONS = {"longpoll": "long polls", "sse": "EventSources", "ndjson": "NDJSON streams"}


def _versions(http: pd.Series) -> pd.Series:
    """The http column as "1.1" / "2" (a CSV round trip reads "2" back as 2.0)."""
    return http.astype(str).str.replace(r"^2\.0$", "2", regex=True)


def connection_rows(frame: pd.DataFrame) -> list[dict]:
    """One claim row per transport whose browser page ran over HTTP/1.1 and HTTP/2 with more
    subscribers than the limit (the largest such page of each version)."""
    needed = {"http", "engine", "origin_connections", "transport", "clients"}
    if frame.empty or not needed <= set(frame.columns):
        return []
    pages = frame[(frame["engine"].astype(str) == "browser")
                  & frame["transport"].isin(tuple(_SUBSCRIPTIONS))
                  & pd.to_numeric(frame["origin_connections"], errors="coerce").notna()]
    pages = pages[pd.to_numeric(pages["clients"]) >= CHROMIUM_PER_ORIGIN]
    http = _versions(pages["http"])
    rows = []
    for transport, group in pages.groupby("transport", sort=False):
        h1 = group[http[group.index] == "1.1"]
        h2 = group[http[group.index] == "2"]
        if h1.empty or h2.empty:
            continue
        a = h1.loc[pd.to_numeric(h1["clients"]).idxmax()]
        b = h2.loc[pd.to_numeric(h2["clients"]).idxmax()]
        held1, held2 = int(a["origin_connections"]), int(b["origin_connections"])
        what = _SUBSCRIPTIONS[transport]
        rows.append(claim_row(
            "RFC 9113 §5 against Chromium's per-origin limit",
            f"One HTTP/2 connection carries a page's {what}, where HTTP/1.1 stops at "
            f"{CHROMIUM_PER_ORIGIN} (browser engine, one page)",
            f"HTTP/1.1 {CHROMIUM_PER_ORIGIN} connections, HTTP/2 1",
            f"HTTP/1.1: {held1} connection(s) to the origin with {a['clients']:g} {what} "
            f"on the page; HTTP/2: {held2} with {b['clients']:g}",
            held2 / held1 if held1 else math.nan,
            held1 == CHROMIUM_PER_ORIGIN and held2 == 1))
    return rows


def _overhead(rows: pd.DataFrame) -> tuple[float, float]:
    tcp = rows["overhead_down_per_msg"] + rows["overhead_up_per_msg"].fillna(0)
    ip = rows["ip_bytes_down_per_msg"] + rows["ip_bytes_up_per_msg"] - rows["message_bytes"]
    return float(tcp.median()), float(ip.median()) if ip.notna().any() else math.nan


def hpack_rows(frame: pd.DataFrame) -> list[dict]:
    """One claim row per path whose long polling ran over HTTP/1.1 and HTTP/2."""
    if "http" not in frame.columns or frame.empty:
        return []
    polls = frame[(frame["transport"] == "longpoll")
                  & (pd.to_numeric(frame["lost"], errors="coerce") == 0)]
    http = _versions(polls["http"])
    stack = polls.get("stack", pd.Series("python", index=polls.index)).astype(str)
    proxy = polls.get("proxy", pd.Series("none", index=polls.index)).astype(str)
    rows = []
    for (s, p), group in polls.groupby([stack, proxy], sort=False):
        h1, h2 = group[http[group.index] == "1.1"], group[http[group.index] == "2"]
        if h1.empty or h2.empty:
            continue
        (t1, i1), (t2, i2) = _overhead(h1), _overhead(h2)
        ratio = t2 / t1 if t1 > 0 else math.nan
        path = f"{s} {'via ' + p if p not in ('none', 'nan') else 'direct'}"
        tls = " over TLS" if str(h2["tls"].iloc[0]) == "True" else ""
        rows.append(claim_row(
            "RFC 7541 (HPACK) against RFC 6202 §2.2",
            f"HTTP/2 compresses long polling's repeated header set ({path}{tls}, "
            f"{h1['clients'].iloc[0]:g} subscribers, {h1['rate_msgs_s'].iloc[0]:g} msg/s)",
            f"HTTP/2 overhead per message <= {HPACK_MAX_RATIO:g} × HTTP/1.1's",
            f"HTTP/1.1 {t1:.0f} B → HTTP/2 {t2:.0f} B per message in TCP payload; "
            f"{i1:.0f} B → {i2:.0f} B at the IP level",
            ratio, math.isfinite(ratio) and ratio <= HPACK_MAX_RATIO))
    return rows
