"""RFC 6455 §5.2's frame header sizes, measured both ways: server→client frames
(unmasked: 2 / 4 / 10 bytes) on fan-out points, client→server frames (masked: 6 / 8 / 14)
on WebSocket echo / chat points that publish over the socket itself.
"""

from __future__ import annotations

import math

import pandas as pd

from duplexbench.contract.websocket import frame_header_size
from duplexbench.report.claims_common import RFC6455, UPSTREAM_PATTERNS, claim_row

__all__ = ["ENVELOPE_SPREAD", "FRAME_SLACK_BYTES", "client_frame_header_rows", "frame_header_rows"]

#: A measured frame header may exceed RFC 6455's by bytes the window caught besides the
#: frames (pings and pongs, a poll or close at the edges); up to one byte per message.
FRAME_SLACK_BYTES = 1.0
#: How far one envelope's length may stray from the mean (digits of seq, ts, index).
ENVELOPE_SPREAD = 4


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
    for payload, group in sorted(ws.groupby("payload_bytes"), key=lambda kv: kv[0]):
        best = group.loc[group["overhead_down_per_msg"].idxmin()]
        length = float(best["message_bytes"])
        # message_bytes is a mean: seq and index digits vary by a few bytes between
        # messages, so an envelope this close to 126 or 65,536 mixes two header sizes.
        if frame_header_size(int(length) - ENVELOPE_SPREAD, False) != frame_header_size(
                int(length) + ENVELOPE_SPREAD, False):
            continue
        predicted = frame_header_size(int(round(length)), masked=False)
        measured = float(best["overhead_down_per_msg"])
        ok = predicted - 0.25 <= measured <= predicted + FRAME_SLACK_BYTES
        rate = best.get("rate_msgs_s", math.nan)
        rows.append(claim_row(
            RFC6455,
            f"Server→client frame header for a {length:.0f}-byte frame payload "
            f"(the envelope of a {payload:g}-byte payload): 2 B below 126, 4 B below 65,536, "
            "10 B beyond",
            f"{predicted} B per message",
            f"{measured:.2f} B per message on the wire (at {rate:g} msg/s: the smallest of "
            f"{len(group)} point(s))",
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
    for payload, group in sorted(ws.groupby("payload_bytes"), key=lambda kv: kv[0]):
        best = group.loc[group["_up_header"].idxmin()]
        length = float(best["_up_frame"])
        # A mean again (index and ts digits): skip frames that straddle a size boundary.
        if not math.isfinite(length) or frame_header_size(
                int(length) - ENVELOPE_SPREAD, True) != frame_header_size(
                int(length) + ENVELOPE_SPREAD, True):
            continue
        predicted = frame_header_size(round(length), masked=True)
        measured = float(best["_up_header"])
        ok = predicted - 0.25 <= measured <= predicted + FRAME_SLACK_BYTES
        rate = best.get("rate_msgs_s", math.nan)
        rows.append(claim_row(
            RFC6455,
            f"Client→server (masked) frame header for a {length:.0f}-byte frame payload "
            f"(the publish frame of a {payload:g}-byte payload, {best['_pattern']}): "
            "6 B below 126, 8 B below 65,536, 14 B beyond",
            f"{predicted} B per message sent up",
            f"{measured:.2f} B per message sent up on the wire (at {rate:g} msg/s: the "
            f"smallest of {len(group)} point(s))",
            measured / predicted, ok))
    return rows
