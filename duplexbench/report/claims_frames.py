"""RFC 6455 §5.2's frame header sizes, measured both ways: server→client frames
(unmasked: 2 / 4 / 10 bytes) on fan-out points, client→server frames (masked: 6 / 8 / 14)
on WebSocket echo / chat points that publish over the socket itself.
"""

from __future__ import annotations

import math

import pandas as pd

from ..contract.websocket import frame_header_size
from .claims_common import RFC6455, UPSTREAM_PATTERNS, claim_row

__all__ = ["ENVELOPE_SPREAD", "FRAME_SLACK_BYTES", "client_frame_header_rows", "frame_header_rows"]

#: A measured frame header may exceed RFC 6455's by bytes the window caught besides the
#: frames (pings and pongs, a poll or close at the edges); up to one byte per message.
FRAME_SLACK_BYTES = 1.0
#: How far one envelope's length may stray from the mean (digits of seq, ts, index).
ENVELOPE_SPREAD = 4


def _judged(ws: pd.DataFrame, header: str, length: str, masked: bool):
    """Per payload, from the point with the smallest measured header (biases only add):
    (payload, points, that row, frame payload length, predicted, measured, confirmed).

    The frame length is a mean (seq, index and ts digits vary by a few bytes between
    messages), so a frame this close to 126 or 65,536 mixes two header sizes: skipped.
    """
    for payload, group in sorted(ws.groupby("payload_bytes"), key=lambda kv: kv[0]):
        best = group.loc[group[header].idxmin()]
        size = float(best[length])
        if not math.isfinite(size) or frame_header_size(
                int(size) - ENVELOPE_SPREAD, masked) != frame_header_size(
                int(size) + ENVELOPE_SPREAD, masked):
            continue
        predicted = frame_header_size(int(round(size)), masked=masked)
        measured = float(best[header])
        ok = predicted - 0.25 <= measured <= predicted + FRAME_SLACK_BYTES
        yield payload, len(group), best, size, predicted, measured, ok


def frame_header_rows(frame: pd.DataFrame) -> list[dict]:
    """Per payload, the *smallest* overhead over the points that swept it.

    Every accounting bias adds bytes, never removes them: a handshake or ping counted
    in the window, or (in runs made before the load generator paused for the warm-up
    to be delivered) warm-up messages still in flight when the byte window opened
    (+1 B at 1 kB, +150 B at 64 kB, 1,000 msg/s). The smallest figure is therefore
    the tightest bound on the frame header itself.
    """
    ws = frame[(frame["transport"] == "websocket") & frame["message_bytes"].notna()
               & frame["overhead_down_per_msg"].notna() & (frame["_upstream"] == "post")]
    rows = []
    for payload, points, best, length, predicted, measured, ok in _judged(
            ws, "overhead_down_per_msg", "message_bytes", masked=False):
        rate = best.get("rate_msgs_s", math.nan)
        rows.append(claim_row(
            RFC6455,
            f"Server→client frame header for a {length:.0f}-byte frame payload "
            f"(the envelope of a {payload:g}-byte payload): 2 B below 126, 4 B below 65,536, "
            "10 B beyond",
            f"{predicted} B per message",
            f"{measured:.2f} B per message on the wire (at {rate:g} msg/s: the smallest of "
            f"{points} point(s))",
            measured / predicted, ok))
    return rows


def client_frame_header_rows(frame: pd.DataFrame) -> list[dict]:
    """RFC 6455 §5.2 for client→server frames, which are masked: 6 / 8 / 14 bytes.

    Measured on WebSocket echo / chat points publishing over the socket: every
    published message went up a subscriber connection as one publish frame
    (``{"ts":..,"data":..}``, counters.json ``message_bytes_up``), and
    ``overhead_up_per_msg`` is what went up beyond those frames' payloads, per
    *delivered* message. Per frame sent up that is ``overhead_up × delivered / sent``
    (echo: each message is delivered once, the factor is 1; chat: to the whole
    room), and the frame payload is ``(bytes_up − overhead_up) × delivered / sent``.
    Per payload, the smallest header over the points is taken (biases only add).
    """
    ws = frame[(frame["transport"] == "websocket") & (frame["_upstream"] == "transport")
               & frame["_pattern"].isin(UPSTREAM_PATTERNS)
               & frame["overhead_up_per_msg"].notna() & frame["bytes_up_per_msg"].notna()
               & (frame["sent"] > 0) & (frame["delivered"] > 0)]
    if ws.empty:
        return []
    ws = ws.copy()
    per_frame = ws["delivered"] / ws["sent"]
    ws["_up_header"] = ws["overhead_up_per_msg"] * per_frame
    ws["_up_frame"] = (ws["bytes_up_per_msg"] - ws["overhead_up_per_msg"]) * per_frame
    rows = []
    for payload, points, best, length, predicted, measured, ok in _judged(
            ws, "_up_header", "_up_frame", masked=True):
        rate = best.get("rate_msgs_s", math.nan)
        rows.append(claim_row(
            RFC6455,
            f"Client→server (masked) frame header for a {length:.0f}-byte frame payload "
            f"(the publish frame of a {payload:g}-byte payload, {best['_pattern']}): "
            "6 B below 126, 8 B below 65,536, 14 B beyond",
            f"{predicted} B per message sent up",
            f"{measured:.2f} B per message sent up on the wire (at {rate:g} msg/s: the "
            f"smallest of {points} point(s))",
            measured / predicted, ok))
    return rows
