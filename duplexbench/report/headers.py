"""HTTP requests per delivered message: the one figure behind every "header per message".

Three places speak of it: the findings ("WebSocket made no HTTP requests per delivered
message ..., against 0.467 for long polling"), RFC 6202 §2.2's claim row (every long-poll
message pays a full header set) and the article's rows (long polling and streaming carry
an HTTP header per message, WebSocket does not). They read the same column, print it the
same way and judge it by the same rule, all defined here.

The figure is ``http_requests_per_msg`` (duplexbench/measure/metrics.py): the HTTP requests the
subscribers sent during the measurement window divided by the messages delivered to them.
Every request is answered by exactly one response, so it is also the HTTP responses, i.e.
full header sets, per delivered message:

* 1: a header set per message (long polling at low rates);
* 1/k: responses carried k messages on average (long polling batches what arrived while
  no poll was waiting: under load the figure falls below 1);
* about 0: headers only when a connection opens (SSE, NDJSON, WebSocket).

The rule: "an HTTP header per message" holds when the figure is at least
:data:`PER_MESSAGE_MIN` (0.5): at least one header set for every two messages delivered,
nearer "one per message" (1) than "one per connection" (0). Its opposite, "no header per
message", holds below it.
"""

from __future__ import annotations

import math

__all__ = [
    "COLUMN",
    "NAME",
    "PER_MESSAGE_MIN",
    "RULE",
    "batching_note",
    "format_requests",
    "per_message_header",
]

#: summary.csv column (metrics.py) that every reading uses.
COLUMN = "http_requests_per_msg"
#: What the figure is called wherever it is printed.
NAME = "HTTP requests per delivered message"
#: At least this many requests (= responses with headers) per delivered message: "a header
#: per message". 0.5 is the midpoint between one per message (1) and one per connection (0).
PER_MESSAGE_MIN = 0.5
#: The rule as the claims report states it.
RULE = (f"\"An HTTP header per message\" is confirmed when {NAME} (requests the subscribers "
        "sent in the measurement window ÷ messages delivered to them; each request gets one "
        "response with a full header set) is at least "
        f"{PER_MESSAGE_MIN:g}, i.e. at least one header set for every two messages: nearer one "
        "per message (1) than one per connection (0). Batching under load lowers it (1/k when "
        "responses carry k messages). \"No HTTP header per message\" (WebSocket) holds below "
        f"{PER_MESSAGE_MIN:g}. Every row that judges it reads it at the same load point.")


def per_message_header(requests: float) -> bool:
    """True when ``requests`` per delivered message amount to a header per message."""
    return math.isfinite(requests) and requests >= PER_MESSAGE_MIN


def format_requests(requests: float) -> str:
    """Three significant digits, as the findings print every figure: 0.733, 1, 0.0012."""
    if not math.isfinite(requests):
        return "n/a"
    return f"{requests:.3g}" if requests >= 0.001 or requests == 0 else f"{requests:.2e}"


def batching_note(requests: float) -> str:
    """'(1.36 messages per response)' when responses carried more than one message on
    average (0 < figure < 1), else ''."""
    if not (math.isfinite(requests) and 0 < requests < 1):
        return ""
    return f" ({1 / requests:.3g} messages per response)"
