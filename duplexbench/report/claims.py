"""What the documents claim, measured: one row per claim, computed from the runs given.

The comparison duplexbench reproduces rests on a few published numbers: RFC 6202
§2.2's transit model for long polling (a message waits up to three network
transits, one on average at low rates, against one for streaming and
WebSocket), its remark that every long-poll message pays a full set of HTTP
headers (which batching under load amortises), RFC 6455 §5.2's frame header
sizes, and the article's statement that long polling and streaming carry an
HTTP header per message where WebSocket does not. RFC 6455's header sizes are checked
both ways: server→client frames (unmasked) on fan-out points, client→server frames
(masked: 4 more bytes) on WebSocket echo / chat points that publish over the socket. Each row puts the prediction
beside the measurement, their ratio and a verdict. A claim whose data is not in
the runs (no delayed points, no payload sweep, ...) gets no row: nothing here is
invented.

``claim_rows(runs) -> list[dict]`` with keys ``source, claim, prediction,
measurement, ratio, verdict`` (verdict ``"confirmed"`` or ``"not confirmed"``;
ratio = measured / predicted, or None where a ratio means nothing; ``"not judged"`` rows
name the points whose validity kept them out of every claim).

Verdicts rest on distributions, not on one maximum: a "worst case" claim is
judged on a high percentile of the per-message latencies, with its sample count
(p99.9 from >= 1,000 deliveries, p99 from >= 100, the maximum only below that,
and said so), computed from the runs' samples when they have them. The
tolerance is the measured noise of that percentile: its 95 % order-statistic
interval (report/noise.py); a claim is confirmed when that interval meets the
band. Header-overhead rows use the kernel's counts when the run has them
(``ip_bytes_*_per_msg``: TCP/IP headers of every segment, pure ACKs included).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from duplexbench.contract.websocket import frame_header_size
from duplexbench.validity import comparable, validity_column
from duplexbench.metrics import nearest_rank
from duplexbench.report.noise import percentile_noise

__all__ = [
    "LONGPOLL_MAX_BAND",
    "gap_model_transits",
    "LONGPOLL_MEAN_BAND",
    "PUBLISHED_POLL_HEADER_BYTES",
    "STREAM_MAX_BAND",
    "claim_rows",
]

RFC6202 = "RFC 6202 §2.2"
RFC6455 = "RFC 6455 §5.2"
ARTICLE = "Article (websocket-mechanism.md), Attachment"
#: The published polling example: request + response headers of one poll (Lubbers & Greco,
#: "HTML5 Web Sockets: A Quantum Leap in Scalability for the Web"), as quoted in issue 7.
PUBLISHED_POLL_HEADER_BYTES = 871
PUBLISHED = "Published polling example (Lubbers & Greco), issue 7"

#: Verdict bands on measured / predicted. The long-poll maximum must *reach* about three
#: transits (2.2-3.6 transits, as the test asks), a mean "near one transit" may be up to
#: 1.5 (at low rates some messages still land in the re-poll gap), and a streaming maximum
#: must stay under 1.8 transits. A measurement below 0.9 transits is physically impossible
#: through the emulated network and is a measurement error, hence the lower bounds.
LONGPOLL_MAX_BAND = (2.2 / 3, 3.6 / 3)
LONGPOLL_MEAN_BAND = (0.9, 1.5)
STREAM_MAX_BAND = (0.9, 1.8)
#: A measured frame header may exceed RFC 6455's by bytes the window caught besides the
#: frames (pings and pongs, a poll or close at the edges); up to one byte per message.
FRAME_SLACK_BYTES = 1.0
#: How far one envelope's length may stray from the mean (digits of seq, ts, index).
ENVELOPE_SPREAD = 4
STREAMING = ("sse", "ndjson", "websocket")
#: Patterns whose clients publish on their own socket when upstream = "transport".
UPSTREAM_PATTERNS = ("echo", "chat")


def claim_rows(runs: Iterable[Any]) -> list[dict]:
    """The claims that the given runs (duplexbench.results.Run) can speak to.

    Only points whose validity is comparable (duplexbench/validity.py: ``ok``,
    ``server-saturated``) confirm or refute a claim; the others get a ``not judged`` row each
    (per transport and validity) saying what was left out and why, never silence.
    """
    runs = list(runs)
    frame = _combined(runs)
    if frame.empty:
        return []
    from duplexbench.report.infra import claim_rows as infra_claim_rows, main_rows

    # RFC 6202 §3.2 (nginx, report/infra.py) reads every row: a held stream (lost, empty)
    # is its evidence, not a point to leave out. The claims below: direct, native-engine rows.
    full, frame = frame, main_rows(frame)
    left_out = _left_out_rows(frame)
    frame = frame[frame["_validity"].map(comparable)]
    rows: list[dict] = []
    rows += _transit_rows(frame, runs)
    rows += _poll_header_rows(frame)
    rows += _batching_rows(frame)
    rows += _frame_header_rows(frame)
    rows += _client_frame_header_rows(frame)
    rows += _article_rows(frame)
    rows += infra_claim_rows(full)
    return rows + left_out


def _left_out_rows(frame: pd.DataFrame) -> list[dict]:
    """One ``not judged`` row per (transport, validity) of the points claims cannot use."""
    bad = frame[~frame["_validity"].map(comparable)]
    rows = []
    for (transport, validity), group in bad.groupby(["transport", "_validity"], sort=True):
        rows.append({
            "source": "point validity (duplexbench/validity.py)",
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


def _row(source: str, claim: str, prediction: str, measurement: str,
         ratio: float | None, ok: bool) -> dict:
    return {
        "source": source,
        "claim": claim,
        "prediction": prediction,
        "measurement": measurement,
        "ratio": None if ratio is None or not math.isfinite(ratio) else round(ratio, 2),
        "verdict": "confirmed" if ok else "not confirmed",
    }


def _within(value: float, band: tuple[float, float]) -> bool:
    return math.isfinite(value) and band[0] <= value <= band[1]


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


# ---------------------------------------------------------------------------
# RFC 6202 §2.2: network transits


def _tail(rows: pd.DataFrame, runs: list) -> tuple[float, str, int, float]:
    """(value ms, label, n, relative noise) of a high percentile of the rows' deliveries.

    From the runs' samples when present (every delivery of every row pooled),
    else from the summary (the percentile column the sample count supports).
    """
    latencies = []
    for _, row in rows.iterrows():
        run = runs[int(row["_run"])] if "_run" in row and 0 <= int(row["_run"]) < len(runs) else None
        samples = None
        if run is not None and hasattr(run, "samples"):
            try:
                samples = run.samples()
            except Exception:
                samples = None
        if samples is None or not len(samples) or "latency_ms" not in samples:
            latencies = None
            break
        mine = samples[(samples["point"] == row.get("point")) & (samples["repeat"] == row.get("repeat"))
                       & (samples["transport"] == row["transport"])]["latency_ms"]
        latencies.append(mine.to_numpy(dtype=float))
    if latencies:
        values = np.concatenate(latencies)
        values = values[~np.isnan(values)]
        n = values.size
        if n:
            q = 99.9 if n >= 1000 else 99.0 if n >= 100 else None
            if q is None:
                return float(values.max()), "max", n, math.nan
            value = float(nearest_rank(values, (q,))[0])
            return value, f"p{q:g}", n, percentile_noise(values, q)
    n = int(rows["lat_samples"].fillna(0).sum())
    for column, label, need in (("lat_p999_ms", "p99.9", 1000), ("lat_p99_ms", "p99", 100)):
        if n >= need and rows[column].notna().all():
            return float(rows[column].max()), label, n, math.nan
    return float(rows["lat_max_ms"].max()), "max", n, math.nan


def _within_noisy(value: float, band: tuple[float, float], noise: float) -> bool:
    """In the band, or the percentile's 95 % interval (± noise) meets it."""
    if _within(value, band) or not math.isfinite(noise):
        return _within(value, band)
    return math.isfinite(value) and value * (1 - noise) <= band[1] and value * (1 + noise) >= band[0]


def _tail_text(value: float, label: str, n: int, noise: float) -> str:
    spread = f" (±{100 * noise:.0f}% at 95%)" if math.isfinite(noise) else ""
    if label == "max":
        return f"max {_ms(value)} over {n} deliveries (too few for a percentile)"
    return f"{label} {_ms(value)}{spread} over {n} deliveries"


def _transit_rows(frame: pd.DataFrame, runs: list | None = None) -> list[dict]:
    """Only points the model speaks to: random (Poisson) arrivals, which land at every
    phase of the poll cycle (a uniform schedule can lock onto one phase and never see
    the worst case), and low load, where a poll is waiting most of the time (gap share
    below one half, x·e^x < 1 with x = 2λd); above that, batching and queueing rule."""
    x = 2 * frame["rate_msgs_s"] * frame["delay_ms"] / 1000.0
    low_load = (x * x.map(math.exp)) < 1.0
    random_arrivals = frame["_arrival"].isin(["poisson", ""])
    delayed = frame[(frame["delay_ms"] > 0) & (frame["lat_samples"].fillna(0) > 0)
                    & low_load & random_arrivals]
    rows = []
    for delay, at_delay in sorted(delayed.groupby("delay_ms"), key=lambda kv: kv[0]):
        polls = at_delay[(at_delay["transport"] == "longpoll") & at_delay["_keepalive"]]
        if not polls.empty:
            worst, label, samples, noise = _tail(polls, runs or [])
            ratio = worst / (3 * delay)
            rows.append(_row(
                RFC6202,
                f"Long polling, one-way delay {delay:g} ms: a message that arrives just after a "
                "response waits for it, the next request and the next response (worst case "
                "≈ 3 transits)",
                f"worst case ≈ 3 × {delay:g} = {_ms(3 * delay)}",
                _tail_text(worst, label, samples, noise),
                ratio, _within_noisy(ratio, LONGPOLL_MAX_BAND, noise)))
            mean = _weighted_mean(polls)
            # Transits are network time: the same transport's mean at delay 0 (local
            # processing, the publish POST) is taken off when the runs have it.
            base = frame[(frame["transport"] == "longpoll") & frame["_keepalive"]
                         & (frame["delay_ms"] == 0) & (frame["lat_samples"].fillna(0) > 0)
                         & frame["rate_msgs_s"].isin(polls["rate_msgs_s"])
                         & frame["payload_bytes"].isin(polls["payload_bytes"])]
            baseline = _weighted_mean(base) if not base.empty else 0.0
            ratio = (mean - baseline) / delay
            rate = float(polls["rate_msgs_s"].median())
            model = gap_model_transits(rate, delay) if math.isfinite(rate) else math.nan
            rows.append(_row(
                RFC6202,
                f"Long polling, one-way delay {delay:g} ms, low rate: a waiting poll answers "
                "at once (mean ≈ 1 transit)",
                f"mean ≈ {_ms(delay)} (1 transit; the re-poll gap model gives "
                f"{model:.2f} transits at {rate:g} msg/s)",
                f"mean {_ms(mean)} over {samples} deliveries"
                + (f", {_ms(mean - baseline)} net of the {_ms(baseline)} measured at delay 0"
                   if not base.empty else " (no delay-0 point to net out local processing)"),
                ratio, _within(ratio, LONGPOLL_MEAN_BAND)))
        for transport in STREAMING:
            streams = at_delay[at_delay["transport"] == transport]
            if streams.empty:
                continue
            worst, label, n, noise = _tail(streams, runs or [])
            ratio = worst / delay
            rows.append(_row(
                RFC6202,
                f"{_NAMES[transport]}, one-way delay {delay:g} ms: a pushed message needs "
                "one transit (worst case ≈ 1 transit)",
                f"worst case ≈ {_ms(delay)}",
                _tail_text(worst, label, n, noise),
                ratio, _within_noisy(ratio, STREAM_MAX_BAND, noise)))
    return rows


def _weighted_mean(rows: pd.DataFrame) -> float:
    weights = rows["lat_samples"].fillna(0)
    return float((rows["lat_mean_ms"] * weights).sum() / weights.sum())


def gap_model_transits(rate_msgs_s: float, delay_ms: float) -> float:
    """Long polling's mean latency in transits at Poisson rate λ (docs/network.md).

    After every response the server has no poll for 2d; messages arriving then wait
    about d more and their batch opens another gap. With x = 2λd the chain of gaps
    lasts 2d·e^x on average, so the share of time without a poll is
    f = x·e^x / (1 + x·e^x) and the mean is d·(1 + f).
    """
    x = 2 * rate_msgs_s * delay_ms / 1000.0
    busy = x * math.exp(x)
    return 1.0 + busy / (1.0 + busy)


_NAMES = {"longpoll": "Long polling", "sse": "SSE", "ndjson": "Chunked NDJSON", "websocket": "WebSocket"}


# ---------------------------------------------------------------------------
# RFC 6202 §2.2: header overhead and batching


def _lowest_rate(rows: pd.DataFrame) -> pd.DataFrame:
    """One comparable point: least delay, lowest rate, payload nearest 100 B."""
    rows = rows[rows["overhead_down_per_msg"].notna() & rows["rate_msgs_s"].notna()]
    if rows.empty:
        return rows
    rows = rows[rows["delay_ms"] == rows["delay_ms"].min()]
    rows = rows[rows["rate_msgs_s"] == rows["rate_msgs_s"].min()]
    nearest = (rows["payload_bytes"] - 100).abs()
    return rows[nearest == nearest.min()]


def _poll_header_rows(frame: pd.DataFrame) -> list[dict]:
    polls = frame[(frame["transport"] == "longpoll") & (frame["_upstream"] == "post")]
    rows = []
    for keepalive in (True, False):
        low = _lowest_rate(polls[polls["_keepalive"] == keepalive])
        if low.empty:
            continue
        overhead = float((low["overhead_down_per_msg"] + low["overhead_up_per_msg"].fillna(0)).median())
        requests = float(low["http_requests_per_msg"].median())
        ip = _ip_overhead(low)
        ip_text = (f"; {ip:.0f} B at the IP level (TCP/IP headers of every segment, pure ACKs "
                   f"included)" if math.isfinite(ip) else "")
        payload_level = overhead
        if math.isfinite(ip):
            overhead = ip  # the kernel's count: what the wire carried beyond the messages
        ratio = overhead / PUBLISHED_POLL_HEADER_BYTES
        # The claim is structural: about one request/response pair per message, and its
        # headers dwarf a frame header. duplexbench's headers are leaner than a browser's
        # (no cookies, no user agent), so the size itself is shown against 871, not judged.
        ok = math.isfinite(requests) and requests >= 0.8 and overhead >= 100
        rows.append(_row(
            f"{RFC6202}; {PUBLISHED}",
            f"Every long-poll message pays a full HTTP request + response header set "
            f"(keep-alive {'on' if keepalive else 'off'}, {low['rate_msgs_s'].iloc[0]:g} msg/s, "
            f"payload {low['payload_bytes'].iloc[0]:g} B)",
            f"≈ 1 request per message; {PUBLISHED_POLL_HEADER_BYTES} B of headers in the published example",
            f"{payload_level:.0f} B overhead per message in TCP payload (up + down), "
            f"{requests:.2f} requests per message{ip_text}",
            ratio, ok))
    return rows


def _ip_overhead(rows: pd.DataFrame) -> float:
    """Median IP-level bytes per message (down + up) beyond the message itself; NaN without."""
    ip = rows["ip_bytes_down_per_msg"] + rows["ip_bytes_up_per_msg"]
    if ip.isna().all():
        return math.nan
    return float((ip - rows["message_bytes"]).median())


#: A fall smaller than this is within what two runs of one point differ by.
BATCHING_FALL_RATIO = 0.9


def _batching_rows(frame: pd.DataFrame) -> list[dict]:
    """Per keep-alive setting and delay (batching depends on rate × poll cycle, and the
    cycle on the delay): the lowest against the highest rate, at the payload nearest 100 B
    among those swept over at least two rates."""
    polls = frame[(frame["transport"] == "longpoll") & (frame["_upstream"] == "post")
                  & frame["overhead_down_per_msg"].notna() & frame["rate_msgs_s"].notna()]
    rows = []
    for (keepalive, delay), subset in polls.groupby(["_keepalive", "delay_ms"], sort=True):
        rates = subset.groupby("payload_bytes")["rate_msgs_s"].nunique()
        swept = rates[rates >= 2]
        if swept.empty:
            continue
        payload = min(swept.index, key=lambda p: (abs(p - 100), p))
        at_payload = subset[subset["payload_bytes"] == payload]
        total = at_payload["overhead_down_per_msg"] + at_payload["overhead_up_per_msg"].fillna(0)
        per_rate = total.groupby(at_payload["rate_msgs_s"]).median()
        requests = at_payload.groupby("rate_msgs_s")["http_requests_per_msg"].median()
        low_rate, high_rate = per_rate.index.min(), per_rate.index.max()
        low, high = float(per_rate[low_rate]), float(per_rate[high_rate])
        ratio = high / low if low else math.nan
        rows.append(_row(
            RFC6202,
            f"Under load, long polling batches messages and amortises its headers "
            f"(keep-alive {'on' if keepalive else 'off'}, one-way delay {delay:g} ms, "
            f"payload {payload:g} B)",
            f"overhead per message falls as the rate rises (by more than "
            f"{1 - BATCHING_FALL_RATIO:.0%} from the lowest to the highest rate)",
            f"{low:.0f} B/msg at {low_rate:g} msg/s ({requests[low_rate]:.2f} req/msg) → "
            f"{high:.0f} B/msg at {high_rate:g} msg/s ({requests[high_rate]:.2f} req/msg)",
            ratio, math.isfinite(ratio) and ratio < BATCHING_FALL_RATIO))
    return rows


# ---------------------------------------------------------------------------
# RFC 6455 §5.2: frame headers


def _frame_header_rows(frame: pd.DataFrame) -> list[dict]:
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
        rows.append(_row(
            RFC6455,
            f"Server→client frame header for a {length:.0f}-byte frame payload "
            f"(the envelope of a {payload:g}-byte payload): 2 B below 126, 4 B below 65,536, "
            "10 B beyond",
            f"{predicted} B per message",
            f"{measured:.2f} B per message on the wire (at {rate:g} msg/s: the smallest of "
            f"{len(group)} point(s))",
            measured / predicted, ok))
    return rows


def _client_frame_header_rows(frame: pd.DataFrame) -> list[dict]:
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
        rows.append(_row(
            RFC6455,
            f"Client→server (masked) frame header for a {length:.0f}-byte frame payload "
            f"(the publish frame of a {payload:g}-byte payload, {best['_pattern']}): "
            "6 B below 126, 8 B below 65,536, 14 B beyond",
            f"{predicted} B per message sent up",
            f"{measured:.2f} B per message sent up on the wire (at {rate:g} msg/s: the "
            f"smallest of {len(group)} point(s))",
            measured / predicted, ok))
    return rows


# ---------------------------------------------------------------------------
# The article: "the Server response still has an HTTP header"


def _article_rows(frame: pd.DataFrame) -> list[dict]:
    """At one reference point (lowest rate, payload nearest 100 B, least delay), per transport."""
    base = frame[(frame["_upstream"] == "post") & frame["_keepalive"]
                 & frame["overhead_down_per_msg"].notna() & frame["http_requests_per_msg"].notna()]
    ws = base[base["transport"] == "websocket"]
    if ws.empty or base[base["transport"] != "websocket"].empty:
        return []
    delay = base["delay_ms"].min()
    base = base[base["delay_ms"] == delay]
    keys = base.groupby(["payload_bytes", "rate_msgs_s"])["transport"].nunique()
    keys = keys[keys == keys.max()]
    payload, rate = min(keys.index, key=lambda k: (k[1], abs(k[0] - 100)))
    point = base[(base["payload_bytes"] == payload) & (base["rate_msgs_s"] == rate)]
    point = point.assign(_ip=point["ip_bytes_down_per_msg"] + point["ip_bytes_up_per_msg"])
    by_transport = point.groupby("transport")[["overhead_down_per_msg", "http_requests_per_msg",
                                               "_ip"]].median()
    if "websocket" not in by_transport.index:
        return []
    ws_overhead = float(by_transport.loc["websocket", "overhead_down_per_msg"])
    rows = []
    for transport in ("longpoll", "sse", "ndjson", "websocket"):
        if transport not in by_transport.index:
            continue
        overhead = float(by_transport.loc[transport, "overhead_down_per_msg"])
        requests = float(by_transport.loc[transport, "http_requests_per_msg"])
        per_message_header = requests >= 0.5
        if transport == "websocket":
            claim = "WebSocket carries no HTTP header per message (only a frame header)"
            prediction = "no HTTP response per message"
            ok = not per_message_header and overhead < 16
        else:
            claim = (f"{_NAMES[transport]}: the server response carries an HTTP header "
                     "for every message")
            prediction = "≈ 1 HTTP response (with headers) per message"
            ok = per_message_header
        ip, ws_ip = by_transport.loc[transport, "_ip"], by_transport.loc["websocket", "_ip"]
        ip_text = ""
        if pd.notna(ip):
            ip_text = f"; {ip:.0f} IP bytes per message, up + down"
            if transport != "websocket" and pd.notna(ws_ip) and ws_ip > 0:
                ip_text += f" ({ip / ws_ip:.1f}× WebSocket's)"
        rows.append(_row(
            ARTICLE, f"{claim} (payload {payload:g} B, {rate:g} msg/s)", prediction,
            (f"{requests:.3f} HTTP responses per message, {overhead:.1f} B down overhead per "
             f"message ({overhead / ws_overhead:.1f}× WebSocket's)"
             if ws_overhead > 0 and transport != "websocket" else
             f"{requests:.3f} HTTP responses per message, {overhead:.1f} B down overhead per "
             "message") + ip_text,
            # measured / predicted responses per message (1 predicted); none for WebSocket (0).
            None if transport == "websocket" else requests, ok))
    return rows
