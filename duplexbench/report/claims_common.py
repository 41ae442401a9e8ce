"""What every claims row shares: sources, transport names, the row dict, bands, units.

The claims (report/claims.py) are computed by one module per kind of claim
(claims_transits, claims_headers, claims_frames); each builds its rows with
:func:`claim_row`, so every row has the same keys and the same verdict words.
"""

from __future__ import annotations

import math

__all__ = [
    "ARTICLE",
    "NAMES",
    "PUBLISHED",
    "PUBLISHED_POLL_HEADER_BYTES",
    "RFC6202",
    "RFC6455",
    "STREAMING",
    "UPSTREAM_PATTERNS",
    "claim_row",
    "ms",
    "within",
]

RFC6202 = "RFC 6202 §2.2"
RFC6455 = "RFC 6455 §5.2"
ARTICLE = "Article (websocket-mechanism.md), Attachment"
#: The published polling example: request + response headers of one poll (Lubbers & Greco,
#: "HTML5 Web Sockets: A Quantum Leap in Scalability for the Web"), as quoted in issue 7.
PUBLISHED_POLL_HEADER_BYTES = 871
PUBLISHED = "Published polling example (Lubbers & Greco), issue 7"

STREAMING = ("sse", "ndjson", "websocket")
#: Patterns whose clients publish on their own socket when upstream = "transport".
UPSTREAM_PATTERNS = ("echo", "chat")

NAMES = {"longpoll": "Long polling", "sse": "SSE", "ndjson": "Chunked NDJSON", "websocket": "WebSocket",
         "tcp": "Plain TCP"}


def claim_row(source: str, claim: str, prediction: str, measurement: str,
              ratio: float | None, ok: bool) -> dict:
    """One row; ratio rounded to 2 places (None when it means nothing)."""
    return {
        "source": source,
        "claim": claim,
        "prediction": prediction,
        "measurement": measurement,
        "ratio": None if ratio is None or not math.isfinite(ratio) else round(ratio, 2),
        "verdict": "confirmed" if ok else "not confirmed",
    }


def within(value: float, band: tuple[float, float]) -> bool:
    return math.isfinite(value) and band[0] <= value <= band[1]


def ms(value: float) -> str:
    return f"{value:.1f} ms"

