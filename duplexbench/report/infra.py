"""Report sections for real infrastructure: nginx in the path, browsers as clients.

Three sections, each only when a run has the rows for it:

- **nginx in the path**: per transport, direct against every nginx setting:
  latency, what nginx adds, nginx CPU per 1,000 delivered messages, and
  whether streaming survived buffering;
- **Browsers as clients**: Chromium's latency beside the native engine's at
  the same point;
- **The connection limit**: one page holding more HTTP/1.1 subscribers than
  Chromium allows connections per origin, with the page's own publishes.

Plus :func:`claim_rows` (RFC 6202 §3.2, "What the documents claim, measured"),
which claims.py calls, and :func:`main_rows`, which keeps the direct,
native-engine, one-process rows for the report's cross-transport figures (like
keep-alive on), so a proxy, browser or multi-worker row is never averaged in as a
repeat.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .topology import reference_mask

__all__ = ["Section", "claim_rows", "left_aside", "main_rows", "sections", "CHROMIUM_PER_ORIGIN"]

#: Chromium's limit of HTTP/1.1 connections per origin (per network context).
CHROMIUM_PER_ORIGIN = 6
#: A streaming point is "held" by the proxy when messages are lost or p99 exceeds both
#: HELD_RATIO x the direct p99 and the direct p99 + HELD_MS.
HELD_RATIO = 10.0
HELD_MS = 100.0
_NAMES = {"longpoll": "Long polling", "sse": "SSE", "ndjson": "NDJSON", "websocket": "WebSocket",
          "tcp": "Plain TCP"}
_STREAMS = ("sse", "ndjson")


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: tuple[str, ...]
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def _flag(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    if text in ("", "nan", "none"):
        return None
    return text in ("true", "1", "yes", "on")


def _text(values: pd.Series, default: str) -> pd.Series:
    """Strings, ``default`` where empty (an all-empty column reads back as float NaN)."""
    return values.astype(object).where(values.notna(), default).astype(str)


def _tidy(summary: pd.DataFrame) -> pd.DataFrame:
    frame = summary.copy()
    if "proxy" not in frame.columns:
        frame["proxy"] = "none"
    frame["proxy"] = _text(frame["proxy"], "none")
    for column in ("proxy_buffering", "proxy_accel_header", "proxy_gzip"):
        values = frame[column] if column in frame.columns else pd.Series(None, index=frame.index)
        frame["_" + column] = values.map(_flag)
    if "engine" not in frame.columns:
        frame["engine"] = "native"
    frame["engine"] = _text(frame["engine"], "native")
    for column in ("lat_p50_ms", "lat_p99_ms", "lat_max_ms", "lost", "delivered", "expected",
                   "sent", "proxy_cpu_s", "proxy_cpu_pct", "client_cpu_pct", "clients"):
        frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
    return frame


def main_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Direct, native-engine rows of one server shape (one process where a run has it:
    report/topology.py) where a run has them (the report's comparisons)."""
    if frame.empty:
        return frame
    keep = reference_mask(frame)
    run = "run" if "run" in frame.columns else "_run" if "_run" in frame.columns else None
    group = frame[run] if run else pd.Series("", index=frame.index)
    if "proxy" in frame.columns:
        direct = _text(frame["proxy"], "none") == "none"
        keep &= direct | ~direct.groupby(group).transform("any")
    if "engine" in frame.columns:
        native = _text(frame["engine"], "native") == "native"
        keep &= native | ~native.groupby(group).transform("any")
    # An HTTP/1.1 and an HTTP/2 row of one point are two measurements, never repeats (seen:
    # a median long-poll latency of 2.6 s from 5.1 s over HTTP/1.1 and 59 ms over HTTP/2);
    # report/http2.py compares the versions. The same for the Node reference beside ours.
    if "http" in frame.columns:
        http1 = _text(frame["http"], "1.1").isin(("1.1", "nan", "None", ""))
        keep &= http1 | ~(http1 & keep).groupby(group).transform("any")
    if "stack" in frame.columns:
        ours = _text(frame["stack"], "python").isin(("python", "nan", "None", ""))
        keep &= ours | ~(ours & keep).groupby(group).transform("any")
    return frame[keep]


def left_aside(frame: pd.DataFrame) -> str:
    """What :func:`main_rows` set aside for being another HTTP version or server stack, in
    words ("the HTTP/2 rows (section HTTP/2)"), or '' when nothing was."""
    kept = main_rows(frame)
    aside = []
    if "http" in frame.columns:
        versions = set(_text(frame["http"], "1.1")) - set(_text(kept["http"], "1.1"))
        if versions - {"1.1", "nan", "None", ""}:
            aside.append("the HTTP/2 rows (compared with HTTP/1.1 in the HTTP/2 section)")
    if "stack" in frame.columns:
        stacks = set(_text(frame["stack"], "python")) - set(_text(kept["stack"], "python"))
        if stacks - {"python", "nan", "None", ""}:
            aside.append(f"the {', '.join(sorted(stacks))} reference server's rows")
    return " and ".join(aside)


def _ms(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.2f} ms"


def _setting(row: pd.Series) -> str:
    if row["proxy"] == "none":
        return "direct"
    text = f"nginx, buffering {'on' if row['_proxy_buffering'] else 'off'}"
    if row["_proxy_buffering"]:
        text += ", X-Accel-Buffering " + ("sent" if row["_proxy_accel_header"] else "not sent")
    if row["_proxy_gzip"]:
        text += ", gzip" if row["engine"] == "browser" else ", gzip (not asked for)"
    return text


#: Runs without schedstat CPU read clock ticks: what one tick is worth spread over a point.
CPU_TICK_S = 0.01


def _cpu_per_1k(row: pd.Series) -> str:
    """nginx CPU per 1,000 delivered messages; '< X ms' when it read 0 (below one tick)."""
    if row["proxy"] == "none" or not row["delivered"] > 0 or not math.isfinite(row["proxy_cpu_s"]):
        return ""
    if row["proxy_cpu_s"] <= 0:
        return f"< {CPU_TICK_S / row['delivered'] * 1e6:.0f} ms"
    return f"{row['proxy_cpu_s'] / row['delivered'] * 1e6:.0f} ms"


def _held(row: pd.Series, direct_p99: float) -> bool:
    if row["lost"] > 0 or (row["expected"] > 0 and not row["delivered"] > 0):
        return True
    p99 = row["lat_p99_ms"]
    return bool(math.isfinite(p99) and math.isfinite(direct_p99)
                and p99 > HELD_RATIO * direct_p99 and p99 > direct_p99 + HELD_MS)


# ---------------------------------------------------------------------------
# nginx


def _direct(frame: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    same = frame[(frame["proxy"] == "none") & (frame["transport"] == row["transport"])
                 & (frame["engine"] == row["engine"]) & (frame["clients"] == row["clients"])]
    return same.iloc[0] if len(same) else None


def _nginx_section(frame: pd.DataFrame) -> Section | None:
    proxied = frame[frame["proxy"] != "none"]
    if proxied.empty:
        return None
    rows, sentences = [], []
    for _, row in frame[frame["transport"].isin(proxied["transport"].unique())].iterrows():
        direct = _direct(frame, row)
        base_p50 = direct["lat_p50_ms"] if direct is not None else math.nan
        base_p99 = direct["lat_p99_ms"] if direct is not None else math.nan
        held = row["transport"] in _STREAMS and row["proxy"] != "none" and _held(row, base_p99)
        rows.append((_NAMES.get(row["transport"], row["transport"]), row["engine"], _setting(row),
                     _ms(row["lat_p50_ms"]), _ms(row["lat_p99_ms"]),
                     (f"{row['lat_p50_ms'] - base_p50:+.2f} ms"
                      if row["proxy"] != "none" and math.isfinite(row["lat_p50_ms"] - base_p50)
                      else ""),
                     f"{row['lost']:.0f} of {row['expected']:.0f}",
                     _cpu_per_1k(row),
                     "held" if held else ("" if row["transport"] not in _STREAMS else "streamed")))
    for _, group in proxied.groupby(["transport", "engine"], sort=False):
        plain = group[group["_proxy_buffering"] == False]  # noqa: E712
        if len(plain):
            row = plain.iloc[0]
            transport = row["transport"]
            direct = _direct(frame, row)
            if direct is not None:
                cpu = _cpu_per_1k(row)
                sentences.append(
                    f"{_NAMES.get(transport, transport)} ({row['engine']}) through nginx "
                    f"(buffering off): p50 {_ms(direct['lat_p50_ms'])} direct, "
                    f"{_ms(row['lat_p50_ms'])} through nginx "
                    f"({row['lat_p50_ms'] - direct['lat_p50_ms']:+.2f} ms); nginx CPU "
                    + (f"{cpu} per 1,000 delivered messages." if cpu else "not measured."))
    paragraphs = [
        "nginx (Debian's package) ran between the subscribers and the server, configured as a "
        "deployment configures each transport (HTTP/1.1 upstream keep-alive, Upgrade headers "
        "for /ws, read timeouts above the poll timeout); the publisher went to the server "
        "directly, so nginx carried subscriber traffic only. nginx shared the server's core "
        "and was sampled as its own process; 'nginx CPU / 1k msg' is its CPU per 1,000 "
        "delivered messages. 'held' marks a stream whose messages were lost or whose p99 "
        f"exceeded {HELD_RATIO:.0f}x the direct p99 (and +{HELD_MS:.0f} ms): buffered by the proxy. "
        "nginx CPU is its master and worker together, from schedstat (nanoseconds) where the "
        "run has it, else from 10 ms clock ticks ('< X ms': less than one tick over the point). "
        "nginx compresses (gzip) only for clients that send Accept-Encoding: the browser does, "
        "the native engine does not ('not asked for').",
        *sentences,
    ]
    return Section("nginx in the path", tuple(paragraphs),
                   ("transport", "engine", "path", "p50", "p99", "p50 vs direct", "lost",
                    "nginx CPU / 1k msg", "streaming"), tuple(rows))


def claim_rows(frame: pd.DataFrame) -> list[dict]:
    """RFC 6202 §3.2 from streaming rows through a buffering nginx without the header."""
    frame = _tidy(frame)
    buffered = frame[(frame["proxy"] != "none") & frame["transport"].isin(_STREAMS)
                     & (frame["_proxy_buffering"] == True)  # noqa: E712
                     & (frame["_proxy_accel_header"] == False)]  # noqa: E712
    out: list[dict] = []
    # nginx compresses only for clients that send Accept-Encoding (browsers; the native
    # client does not), so "gzip" in effect = gzip on and the browser engine.
    compressed = (buffered["_proxy_gzip"] == True) & (buffered["engine"] == "browser")  # noqa: E712
    for gzip, group in buffered.groupby(compressed, sort=True):
        parts, held_any, ratios = [], False, []
        for _, row in group.iterrows():
            direct = _direct(frame, row)
            base = direct["lat_p99_ms"] if direct is not None else math.nan
            held = _held(row, base)
            held_any |= held
            if math.isfinite(base) and base > 0 and math.isfinite(row["lat_p99_ms"]):
                ratios.append(row["lat_p99_ms"] / base)
            parts.append(f"{_NAMES.get(row['transport'])} ({row['engine']}): p99 {_ms(base)} direct, "
                         f"{_ms(row['lat_p99_ms'])} buffered, lost {row['lost']:.0f} of "
                         f"{row['expected']:.0f}{' (held)' if held else ''}")
        condition = "nginx proxy_buffering on, no X-Accel-Buffering" + (
            ", responses gzip-compressed" if gzip else ", responses not compressed")
        out.append({
            "source": "RFC 6202 §3.2",
            "claim": "intermediaries may buffer an HTTP streaming response, delaying its "
                     f"messages ({condition})",
            "prediction": f"SSE/NDJSON p99 > {HELD_RATIO:.0f}x direct, or messages held "
                          "until the response ends",
            "measurement": "; ".join(parts),
            "ratio": round(max(ratios), 2) if ratios else None,
            "verdict": "confirmed" if held_any else "not confirmed",
        })
    return out


# ---------------------------------------------------------------------------
# Browsers


def _counters(run: Any) -> dict[int, dict]:
    """counters.json of every point, by point index (the browser's own notes live there)."""
    out: dict[int, dict] = {}
    for path in sorted(Path(run.path, "points").glob("*/counters.json")):
        try:
            out[int(path.parent.name.split("-")[0])] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return out


def _engine_option(run: Any, key: str, default: float) -> float:
    scenario = (run.meta.get("scenario") or {}).get("parsed") or {}
    engine = scenario.get("engine") if isinstance(scenario, dict) else {}
    try:
        return float((engine or {}).get(key, default))
    except (TypeError, ValueError, AttributeError):
        return default


def _per_page(run: Any) -> int:
    return int(_engine_option(run, "per_page", 1))


def _limit_sentences(rows: pd.DataFrame, counters: dict[int, dict], per_page: int,
                     poll_timeout: float) -> list[str]:
    """Below against above the limit, per transport (and HTTP version), in the run's numbers."""
    out = []
    versions = rows["_http"].nunique() > 1
    for (transport, version), group in rows.groupby(["transport", "_http"], sort=False):
        group = group.assign(_on=group["clients"].clip(upper=per_page)).sort_values("_on")
        below = group[group["_on"] < CHROMIUM_PER_ORIGIN]
        above = group[group["_on"] >= CHROMIUM_PER_ORIGIN]
        if above.empty:
            continue
        a = above.iloc[-1]
        c = counters.get(int(a["point"]), {})
        name = _NAMES.get(transport, transport) + (f" over HTTP/{version}" if versions else "")
        held = _connections_note(a)
        if below.empty:  # no page under the limit in this sweep: the largest page alone
            if a["delivered"] > 0:
                out.append(f"{name} with {a['_on']:.0f} subscribers on one page: "
                           f"{a['delivered']:.0f} of {a['expected']:.0f} delivered, p50 "
                           f"{_ms(a['lat_p50_ms'])}, max {_ms(a['lat_max_ms'])}{held}.")
            else:
                out.append(_nothing_published(name, a, c, held) + ".")
            continue
        b = below.iloc[-1]
        if not a["delivered"] > 0:
            out.append(_nothing_published(name, a, c, held) + f"; with {b['_on']:.0f}, p50 "
                       f"{_ms(b['lat_p50_ms'])} and nothing lost.")
        else:
            out.append(f"{name} with {a['_on']:.0f} subscribers on one page: p50 "
                       f"{_ms(a['lat_p50_ms'])}, max {_ms(a['lat_max_ms'])}{held}, against p50 "
                       f"{_ms(b['lat_p50_ms'])} with {b['_on']:.0f}"
                       + (f" (the pages' poll timeout was {poll_timeout:g} s)."
                          if transport == "longpoll" else "."))
    return out


def _nothing_published(name: str, row: pd.Series, counters: dict, held: str) -> str:
    """A page above the limit that published nothing: what it published and who never opened."""
    return (f"{name} with {row['_on']:.0f} subscribers on one page: the page published "
            f"{counters.get('published', 0)} of {counters.get('scheduled', '?')} messages and "
            f"{counters.get('subscribers_never_opened', 0)} subscribers never opened{held}")


def _connections_note(row: pd.Series) -> str:
    """", holding N connection(s) to the origin" where the browser engine counted them."""
    held = pd.to_numeric(row.get("origin_connections"), errors="coerce")
    return f", holding {held:.0f} connection(s) to the origin" if pd.notna(held) else ""


def _browser_section(frame: pd.DataFrame) -> Section | None:
    browser = frame[(frame["engine"] == "browser") & (frame["proxy"] == "none")]
    if browser.empty or not (frame["engine"] == "native").any():
        return None  # nothing to set it beside (the connection-limit section covers the rest)
    rows, sentences = [], []
    for _, row in browser.iterrows():
        native = frame[(frame["engine"] == "native") & (frame["proxy"] == "none")
                       & (frame["transport"] == row["transport"])
                       & (frame["clients"] == row["clients"])]
        n = native.iloc[0] if len(native) else None
        diff = row["lat_p50_ms"] - n["lat_p50_ms"] if n is not None else math.nan
        rows.append((_NAMES.get(row["transport"], row["transport"]), f"{row['clients']:.0f}",
                     _ms(n["lat_p50_ms"]) if n is not None else "n/a", _ms(row["lat_p50_ms"]),
                     _ms(n["lat_p99_ms"]) if n is not None else "n/a", _ms(row["lat_p99_ms"]),
                     f"{diff:+.2f} ms" if math.isfinite(diff) else "n/a",
                     f"{row['lost']:.0f}", f"{row['client_cpu_pct']:.0f}%"))
        if n is not None and math.isfinite(diff):
            sentences.append(f"{_NAMES.get(row['transport'])}: Chromium's p50 was {_ms(row['lat_p50_ms'])}, "
                             f"{diff:+.2f} ms from the native engine's {_ms(n['lat_p50_ms'])}.")
    paragraphs = (
        "Headless Chromium (Debian's, driven by Playwright) subscribed with its own "
        "WebSocket, EventSource and fetch long polling from pages served by the server "
        "under test, and published with fetch from the first page. Intended, sent and "
        "received times are performance.timeOrigin + performance.now() in the pages "
        "(100 µs resolution); the page's setTimeout publishes a little after the intended "
        "time, which counts as latency (coordinated omission corrected). All of Chromium's "
        "processes (browser, network service, one renderer per page) shared the load "
        "generator's single core, 'browser CPU' being their sum: every message crosses them "
        "by IPC, so browser latency includes their scheduling on that core, and long polling, "
        "which adds a request round trip per message, pays it most.",
        *sentences,
    )
    return Section("Browsers as clients", paragraphs,
                   ("transport", "subscribers", "native p50", "browser p50", "native p99",
                    "browser p99", "p50 difference", "browser lost", "browser CPU"), tuple(rows))


def _limit_section(run: Any, frame: pd.DataFrame) -> Section | None:
    per_page = _per_page(run)
    browser = frame[frame["engine"] == "browser"]
    direct = browser[browser["proxy"] == "none"]
    # Direct pages where the run has them; else the proxied ones (HTTP/2 needs nginx and TLS).
    browser = direct if not direct.empty else browser
    if browser.empty or per_page <= 1:
        return None
    http = browser["http"] if "http" in browser.columns else pd.Series("1.1", index=browser.index)
    browser = browser.assign(_http=http.astype(str).replace({"2.0": "2", "nan": "1.1",
                                                               "None": "1.1", "": "1.1"}))
    counters = _counters(run)
    versions = browser["_http"].nunique() > 1
    rows = []
    for _, row in browser.iterrows():
        c = counters.get(int(row["point"]), {})
        on_page = min(int(row["clients"]), per_page)
        held = pd.to_numeric(row.get("origin_connections"), errors="coerce")
        rows.append((_NAMES.get(row["transport"], row["transport"]),
                     *((f"HTTP/{row['_http']}",) if versions else ()), f"{on_page}",
                     f"{held:.0f}" if pd.notna(held) else "n/a",
                     f"{c.get('published', row['sent']):.0f} of {c.get('scheduled', math.nan):.0f}",
                     f"{c.get('subscribers_never_opened', 0)}",
                     f"{row['delivered']:.0f} of {row['expected']:.0f}",
                     _ms(row["lat_p50_ms"]), _ms(row["lat_max_ms"])))
    paragraphs = (
        f"Chromium opens at most {CHROMIUM_PER_ORIGIN} HTTP/1.1 connections per origin (per "
        "browser profile). A held long poll occupies one for the whole poll timeout, an "
        "EventSource for as long as it is open; the page's own publishes (fetch POST) need one "
        "too. With more subscribers on one page than that, requests queue inside the browser: "
        "long polls beyond the limit wait until a held poll returns, and the page's publishes "
        "wait behind them, so nothing is published until a poll times out (latency grows to "
        "the poll timeout) or, with EventSource, never (the streams never end). WebSocket "
        "connections are not counted against this limit, so the same page keeps working. "
        "Over HTTP/2 one connection to the origin carries every request of the page. "
        "'Connections' is the most TCP connections Chromium held to the origin at once, "
        "counted from the browser's sockets while the point ran.",
        *_limit_sentences(browser, counters, per_page,
                          _engine_option(run, "poll_timeout_s", 30.0)),
        "Published = the page's publishes that completed, of those scheduled in the "
        "measurement window; 'never opened' = subscribers that never got a connection.",
    )
    return Section("The connection limit", paragraphs,
                   ("transport", *(("HTTP",) if versions else ()), "subscribers on the page",
                    "connections", "published", "never opened", "delivered", "p50", "max"),
                   tuple(rows))


def sections(runs: list[Any]) -> list[Section]:
    """The infrastructure sections these runs can fill (first run that has each)."""
    out: list[Section] = []
    for run in runs:
        summary = getattr(run, "summary", None)
        if summary is None or summary.empty or "transport" not in summary.columns:
            continue
        frame = _tidy(summary)
        for make in (_nginx_section, _browser_section):
            section = make(frame)
            if section is not None:
                out.append(section)
        limit = _limit_section(run, frame)
        if limit is not None:
            out.append(limit)
    return out
