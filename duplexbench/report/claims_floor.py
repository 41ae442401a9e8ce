"""Skvorc, Horvat and Srbljic (MIPRO 2014), measured: WebSocket against plain TCP.

The paper (docs/floor.md) measured WebSocket against a plain TCP stream and
reported that, apart from the opening handshake, WebSocket generates no more
traffic than plain TCP, and that its latency is slightly worse. The ``tcp``
transport is that plain stream on the same hub, so a run with both at the same
point can check each half:

- bytes per delivered message, WebSocket ÷ tcp, in TCP payload (the frame header
  against tcp's newline: RFC 6455 §5.2's size minus one byte) and at the IP level
  (the kernel's count: the same packets and ACKs, so the ratio should be ~1);
  the handshakes happened in the warm-up, outside the window, which is the paper's
  "apart from the opening handshake" (the handshake amortised over the window is
  zero here; docs/floor.md says what it costs per connection);
- p50 and p99 of fan-out latency, WebSocket ÷ tcp at the same load;
- the echo round trip (pattern echo, upstream = "transport": each client publishes
  on its own socket and times its own message back), p50 and p99.

One row per figure, at the largest subscriber count where both transports are
comparable (measure/validity.py), with the range over every such point beside it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..contract.websocket import frame_header_size
from .claims_common import claim_row
from .noise import percentile_noise

__all__ = [
    "SKVORC",
    "SKVORC_BYTES_SLACK",
    "SKVORC_LATENCY_BAND",
    "SKVORC_RULES",
    "skvorc_rows",
]

SKVORC = "Skvorc, Horvat & Srbljic, MIPRO 2014 (docs/floor.md)"
#: "No more traffic": WebSocket ÷ tcp at most 1 + this (IP level; TCP payload adds the
#: frame header it predicts on top).
SKVORC_BYTES_SLACK = 0.05
#: "Slightly worse": WebSocket ÷ tcp latency in this band; a percentile counts when its
#: 95 % interval meets it.
SKVORC_LATENCY_BAND = (1.0, 1.5)
#: A latency ratio whose 95 % interval spans more than this factor meets any band: such a
#: row is "not judged" (a p99 from a few hundred correlated samples can be that loose).
UNRESOLVED_SPAN = 10.0
#: Printed under the claims table (claims.VERDICT_RULES).
SKVORC_RULES = (
    "WebSocket against plain TCP (Skvorc et al. 2014): bytes at the IP level confirmed when "
    f"WebSocket ÷ tcp <= {1 + SKVORC_BYTES_SLACK:g}; bytes in TCP payload confirmed when "
    "WebSocket's exceed tcp's by at most RFC 6455's frame header minus tcp's newline, "
    f"+{1:g} B (pings, edges); p50 / p99 (fan-out delivery, echo round trip) confirmed when "
    f"the ratio's 95 % interval meets {SKVORC_LATENCY_BAND[0]:g}–{SKVORC_LATENCY_BAND[1]:g} "
    "(no better than tcp, at most half again as slow), not judged when that interval spans "
    f"more than {UNRESOLVED_SPAN:g}×. Judged at the largest subscriber "
    "count where both are comparable; the range over all such points is beside it.",
)

_KEYS = ("_run", "_pattern", "_upstream", "clients", "rate_msgs_s", "payload_bytes",
         "delay_ms", "repeat")


def _pairs(frame: pd.DataFrame, pattern: str) -> list[tuple[pd.Series, pd.Series]]:
    """(websocket row, tcp row) at the same point, largest subscriber count first."""
    rows = frame[frame["_pattern"].replace("", "fanout") == pattern]
    keys = [k for k in _KEYS if k in rows.columns]
    tcp = {tuple(r[k] for k in keys): r for _, r in rows[rows["transport"] == "tcp"].iterrows()}
    pairs = []
    for _, ws in rows[rows["transport"] == "websocket"].iterrows():
        base = tcp.get(tuple(ws[k] for k in keys))
        if base is not None:
            pairs.append((ws, base))
    return sorted(pairs, key=lambda p: (-float(p[0]["clients"]), -float(p[0]["rate_msgs_s"])))


def _where(ws: pd.Series, n_points: int) -> str:
    return (f"at {ws['clients']:g} subscribers, {ws['rate_msgs_s']:g} msg/s, "
            f"{ws['payload_bytes']:g} B" + (f" (largest of {n_points} points)" if n_points > 1 else ""))


def _range(ratios: list[float]) -> str:
    ratios = [r for r in ratios if math.isfinite(r)]
    if len(ratios) < 2:
        return ""
    return f"; over all points {min(ratios):.2f}–{max(ratios):.2f}×"


def _samples(row: pd.Series, runs: list) -> np.ndarray | None:
    """The row's own latency samples (for the percentile's interval), when the run has them."""
    try:
        run = runs[int(row["_run"])]
        samples = run.samples()
    except Exception:
        return None
    if samples is None or not len(samples) or "latency_ms" not in samples:
        return None
    mine = samples[(samples["point"] == row.get("point")) & (samples["repeat"] == row.get("repeat"))
                   & (samples["transport"] == row["transport"])]["latency_ms"]
    return mine.to_numpy(dtype=float) if len(mine) else None


def _noise(row: pd.Series, runs: list, percentile: float) -> float:
    values = _samples(row, runs)
    noise = percentile_noise(values, percentile) if values is not None else math.nan
    return noise if math.isfinite(noise) else 0.0


def _bytes_rows(pairs) -> list[dict]:
    rows = []
    if not pairs:
        return rows
    ws, tcp = pairs[0]
    where = _where(ws, len(pairs))
    ip_ws = ws["ip_bytes_down_per_msg"] + _zero(ws["ip_bytes_up_per_msg"])
    ip_tcp = tcp["ip_bytes_down_per_msg"] + _zero(tcp["ip_bytes_up_per_msg"])
    if math.isfinite(ip_ws) and math.isfinite(ip_tcp) and ip_tcp > 0:
        ratio = ip_ws / ip_tcp
        all_ratios = [(w["ip_bytes_down_per_msg"] + _zero(w["ip_bytes_up_per_msg"]))
                      / (t["ip_bytes_down_per_msg"] + _zero(t["ip_bytes_up_per_msg"])) for w, t in pairs]
        rows.append(claim_row(
            SKVORC, "Apart from the opening handshake, WebSocket generates no more traffic than "
            "plain TCP: IP bytes (headers and ACKs included, kernel's count) per delivered message",
            f"WebSocket ÷ tcp <= {1 + SKVORC_BYTES_SLACK:g}",
            f"{ip_ws:.1f} B against {ip_tcp:.1f} B {where} (exact counts){_range(all_ratios)}",
            ratio, ratio <= 1 + SKVORC_BYTES_SLACK))
    down_ws, down_tcp = float(ws["bytes_down_per_msg"]), float(tcp["bytes_down_per_msg"])
    size = float(ws.get("message_bytes", math.nan))
    if math.isfinite(down_ws) and math.isfinite(down_tcp) and down_tcp > 0 and math.isfinite(size):
        header = frame_header_size(int(round(size)), masked=False)
        predicted = down_tcp + header - 1  # tcp's line ends in one newline byte
        rows.append(claim_row(
            SKVORC, "The same in TCP payload: per message, WebSocket's frame header in place "
            "of plain TCP's newline (handshake outside the window)",
            f"<= {predicted:.1f} B per message (tcp's {down_tcp:.1f} + {header} B header − 1 B "
            "newline)",
            f"{down_ws:.1f} B against {down_tcp:.1f} B {where}",
            down_ws / down_tcp, down_ws <= predicted + 1.0))
    return rows


def _zero(value) -> float:
    value = float(value) if value is not None else math.nan
    return 0.0 if not math.isfinite(value) else value


def _latency_rows(pairs, runs: list, what: str) -> list[dict]:
    rows = []
    if not pairs:
        return rows
    ws, tcp = pairs[0]
    where = _where(ws, len(pairs))
    lo_band, hi_band = SKVORC_LATENCY_BAND
    for percentile, column in ((50, "lat_p50_ms"), (99, "lat_p99_ms")):
        a, b = float(ws.get(column, math.nan)), float(tcp.get(column, math.nan))
        if not (math.isfinite(a) and math.isfinite(b) and b > 0):
            continue
        ratio = a / b
        n_ws, n_tcp = _noise(ws, runs, percentile), _noise(tcp, runs, percentile)
        lo = ratio * (1 - n_ws) / (1 + n_tcp)
        hi = ratio * (1 + n_ws) / (1 - n_tcp) if n_tcp < 1 else math.inf
        all_ratios = [float(w[column]) / float(t[column]) for w, t in pairs
                      if float(t[column]) > 0]
        row = claim_row(
            SKVORC, f"WebSocket's latency is slightly worse than plain TCP's: {what} "
            f"p{percentile}",
            f"WebSocket ÷ tcp in {lo_band:g}–{hi_band:g}",
            f"{a:.2f} ms against {b:.2f} ms {where}; 95 % interval of the ratio "
            f"{lo:.2f}–{_bound(hi)}{_range(all_ratios)}",
            ratio, hi >= lo_band and lo <= hi_band)
        if not hi / max(lo, 1e-12) <= UNRESOLVED_SPAN:
            # An interval this wide meets any band: it carries no verdict either way.
            row["verdict"] = "not judged"
            row["measurement"] += (f" (the interval spans more than {UNRESOLVED_SPAN:g}×: this "
                                   "run's noise cannot place the ratio; more samples or "
                                   "--repeats would)")
        rows.append(row)
    return rows


def _bound(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "unbounded"


def skvorc_rows(frame: pd.DataFrame, runs: list | None = None) -> list[dict]:
    """The rows, from the claims' comparable frame (claims._combined, validity filtered)."""
    if frame.empty or not {"websocket", "tcp"} <= set(frame["transport"]):
        return []
    runs = runs or []
    fanout = _pairs(frame, "fanout")
    echo = [(w, t) for w, t in _pairs(frame, "echo") if w["_upstream"] == "transport"]
    return (_bytes_rows(fanout) + _latency_rows(fanout, runs, "fan-out delivery")
            + _latency_rows(echo, runs, "echo round trip (each client publishes on its own "
                            "socket, upstream = transport)"))
