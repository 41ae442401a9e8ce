"""What the documents claim, measured: one row per claim, computed from the runs given.

The comparison duplexbench reproduces rests on a few published numbers: RFC 6202
§2.2's transit model for long polling (a message waits up to three network
transits, one on average at low rates, against one for streaming and
WebSocket; report/claims_transits.py), its remark that every long-poll message
pays a full set of HTTP headers (which batching under load amortises) and the
article's statement that long polling and streaming carry an HTTP header per
message where WebSocket does not (report/claims_headers.py), and RFC 6455 §5.2's
frame header sizes, both ways (report/claims_frames.py), and Skvorc et al.'s
WebSocket-against-plain-TCP comparison (report/claims_floor.py). Each row puts the
prediction beside the measurement, their ratio and a verdict. A claim whose data
is not in the runs (no delayed points, no payload sweep, ...) gets no row: nothing
here is invented.

``claim_rows(runs) -> list[dict]`` with keys ``source, claim, prediction,
measurement, ratio, verdict`` (verdict ``"confirmed"`` or ``"not confirmed"``;
ratio = measured / predicted, or None where a ratio means nothing; ``"not judged"`` rows
name the points whose validity kept them out of every claim). This module reads
the runs into one frame and gathers the rows; each kind of claim is computed in
its own module.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

from ..measure.validity import comparable, validity_column
from . import headers
from .claims_common import PUBLISHED_POLL_HEADER_BYTES
from .claims_floor import SKVORC_RULES, skvorc_rows
from .claims_h2 import CONNECTIONS_RULE, HPACK_RULE, connection_rows, hpack_rows
from .claims_frames import (
    FRAME_SLACK_BYTES,
    client_frame_header_rows,
    frame_header_rows,
)
from .claims_headers import (
    BATCHING_FALL_RATIO,
    WS_MAX_OVERHEAD,
    article_rows,
    batching_rows,
    poll_header_rows,
)
from .claims_transits import (
    LONGPOLL_MAX_BAND,
    LONGPOLL_MEAN_BAND,
    STREAM_MAX_BAND,
    gap_model_transits,
    transit_rows,
)

__all__ = [
    "LONGPOLL_MAX_BAND",
    "gap_model_transits",
    "LONGPOLL_MEAN_BAND",
    "PUBLISHED_POLL_HEADER_BYTES",
    "STREAM_MAX_BAND",
    "VERDICT_RULES",
    "claim_rows",
]

#: What "confirmed" means, row kind by row kind: the report prints these under the table.
VERDICT_RULES: tuple[str, ...] = (
    "Only points whose validity is ok or server-saturated are judged; the others are named "
    "in \"not judged\" rows.",
    "Transits (RFC 6202 §2.2): the long-poll worst case (p99.9 from >= 1,000 deliveries, p99 "
    f"from >= 100) within {3 * LONGPOLL_MAX_BAND[0]:.1f}–{3 * LONGPOLL_MAX_BAND[1]:.1f} "
    f"transits, its mean net of the delay-0 mean within {LONGPOLL_MEAN_BAND[0]:g}–"
    f"{LONGPOLL_MEAN_BAND[1]:g} transits, a streaming worst case within {STREAM_MAX_BAND[0]:g}–"
    f"{STREAM_MAX_BAND[1]:g} transits; a percentile counts when its 95 % interval meets the band.",
    "HTTP header per message (RFC 6202's header rows and the article's rows): "
    + headers.RULE + f" WebSocket's row also needs its down overhead below "
    f"{WS_MAX_OVERHEAD:g} B per message (a frame header, not an HTTP one). Ratio = the figure "
    "÷ the 1 predicted.",
    f"Batching (RFC 6202 §2.2): overhead per message at the highest rate below "
    f"{BATCHING_FALL_RATIO:g} × that at the lowest.",
    "Frame headers (RFC 6455 §5.2): the smallest measured header per payload within "
    f"−0.25 / +{FRAME_SLACK_BYTES:g} B of the RFC's size.",
    *SKVORC_RULES,
    HPACK_RULE,
    CONNECTIONS_RULE,
)


def claim_rows(runs: Iterable[Any]) -> list[dict]:
    """The claims that the given runs (duplexbench.measure.results.Run) can speak to.

    Only points whose validity is comparable (duplexbench/measure/validity.py: ``ok``,
    ``server-saturated``) confirm or refute a claim; the others get a ``not judged`` row each
    (per transport and validity) saying what was left out and why, never silence.
    """
    runs = list(runs)
    frame = _combined(runs)
    if frame.empty:
        return []
    from .infra import claim_rows as infra_claim_rows
    from .infra import main_rows

    # RFC 6202 §3.2 (nginx, report/infra.py) reads every row: a held stream (lost, empty)
    # is its evidence, not a point to leave out. The claims below: direct, native-engine rows.
    full, frame = frame, main_rows(frame)
    left_out = _left_out_rows(frame)
    frame = frame[frame["_validity"].map(comparable)]
    comparable_all = full[full["_validity"].map(comparable)]
    http2 = frame.iloc[0:0]
    if "http" in frame.columns:  # the published claims are HTTP/1.1's; HPACK's row compares
        http1 = frame["http"].astype(str).isin(("1.1", "nan", "None", ""))
        http2 = comparable_all[comparable_all["http"].astype(str).isin(("2", "2.0"))]
        frame = frame[http1] if http1.any() else frame
    rows: list[dict] = []
    rows += transit_rows(frame, runs)
    rows += poll_header_rows(frame)
    rows += batching_rows(frame)
    rows += frame_header_rows(frame)
    rows += client_frame_header_rows(frame)
    rows += article_rows(frame)
    rows += skvorc_rows(frame, runs)
    rows += infra_claim_rows(full)
    rows += hpack_rows(comparable_all)
    rows += connection_rows(full)  # every browser row: a queued page is the evidence
    # The article's "HTTP header per message" rows, per transport, under HTTP/2 (same rule).
    rows += [{**row, "claim": f"{row['claim']} — under HTTP/2"} for row in article_rows(http2)]
    return rows + left_out


def _left_out_rows(frame: pd.DataFrame) -> list[dict]:
    """One ``not judged`` row per (transport, validity) of the points claims cannot use."""
    bad = frame[~frame["_validity"].map(comparable)]
    rows = []
    for (transport, validity), group in bad.groupby(["transport", "_validity"], sort=True):
        rows.append({
            "source": "point validity (duplexbench/measure/validity.py)",
            "claim": f"{transport}: {len(group)} point(s) left out of every claim",
            "prediction": "",
            "measurement": f"{validity}: its figures describe something other than the server",
            "ratio": None,
            "verdict": "not judged",
        })
    return rows


# ---------------------------------------------------------------------------
# Input: every run's summary rows, cleaned


def _combined(runs: Iterable[Any]) -> pd.DataFrame:
    frames = []
    for index, run in enumerate(runs):
        summary = getattr(run, "summary", None)
        if summary is None or summary.empty:
            continue
        summary = summary.copy()
        summary["_arrival"] = _arrival(getattr(run, "meta", None))
        summary["_run"] = index
        frames.append(summary)
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    if "transport" not in frame.columns:
        return pd.DataFrame()
    frame = frame.copy()
    if "status" in frame.columns:
        frame = frame[frame["status"].fillna("ok").astype(str) != "error"]
    frame["_validity"] = validity_column(frame).astype(str)
    for column in ("delay_ms", "payload_bytes", "message_bytes", "rate_msgs_s", "lat_max_ms",
                   "lat_mean_ms", "lat_samples", "delivered", "clients", "overhead_down_per_msg", "overhead_up_per_msg",
                   "http_requests_per_msg", "bytes_up_per_msg", "sent", "lat_p99_ms", "lat_p999_ms",
                   "lat_p50_ms", "bytes_down_per_msg",
                   "ip_bytes_down_per_msg", "ip_bytes_up_per_msg"):
        if column not in frame.columns:
            frame[column] = 0.0 if column == "delay_ms" else math.nan
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["delay_ms"] = frame["delay_ms"].fillna(0.0)
    keepalive = frame["keepalive"] if "keepalive" in frame.columns else pd.Series("", index=frame.index)
    frame["_keepalive"] = keepalive.map(_keepalive_on)
    upstream = frame["upstream"] if "upstream" in frame.columns else pd.Series("post", index=frame.index)
    frame["_upstream"] = upstream.fillna("post").astype(str)
    pattern = frame["pattern"] if "pattern" in frame.columns else pd.Series("", index=frame.index)
    frame["_pattern"] = pattern.fillna("").astype(str)
    return frame


def _arrival(meta: Any) -> str:
    """The run's arrival process ("poisson", "uniform"), or "" when meta does not say."""
    if not isinstance(meta, dict):
        return ""
    scenario = meta.get("scenario") or {}
    parsed = scenario.get("parsed", scenario) if isinstance(scenario, dict) else {}
    return str(parsed.get("arrival", "")) if isinstance(parsed, dict) else ""


def _keepalive_on(value: Any) -> bool:
    return str(value).strip().lower() not in ("false", "0", "no", "off")


