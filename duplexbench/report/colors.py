"""One colour, marker and name per transport, used by every figure and table.

A reader learns "blue is WebSocket" once and it holds across the report, the
notebook and a side-by-side comparison of runs. Colours come from the Okabe-Ito
palette, chosen to stay distinguishable with the common forms of colour blindness;
each transport also has its own marker and line style so figures survive
greyscale printing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TRANSPORTS",
    "TransportStyle",
    "RUN_HATCHES",
    "RUN_LINESTYLES",
    "style",
    "color",
    "label",
    "order_transports",
]


@dataclass(frozen=True)
class TransportStyle:
    name: str  # the value in summary.csv's `transport` column
    label: str  # what a person reads in legends and sentences
    color: str  # Okabe-Ito hex colour
    marker: str  # matplotlib marker, a second cue besides colour
    linestyle: str  # a third cue for line plots


#: Report order: from the oldest technique to the newest, as the documents tell it.
TRANSPORTS: tuple[TransportStyle, ...] = (
    TransportStyle("longpoll", "long polling", "#D55E00", "o", "-"),  # vermilion
    TransportStyle("sse", "SSE", "#009E73", "s", "-"),  # bluish green
    TransportStyle("ndjson", "NDJSON streaming", "#CC79A7", "^", "-"),  # reddish purple
    TransportStyle("websocket", "WebSocket", "#0072B2", "D", "-"),  # blue
    # The floor under the others (docs/floor.md): black, dashed, so it reads as a baseline.
    TransportStyle("tcp", "plain TCP", "#000000", "x", "--"),
)

_BY_NAME = {t.name: t for t in TRANSPORTS}
#: An unknown transport (a future one) still gets a stable, distinct look.
_SPARE = ("#E69F00", "#56B4E9", "#F0E442", "#999999")

#: Several runs in one figure: same transport colour, a different hatch / line style per run.
RUN_HATCHES = ("", "//", "..", "xx", "\\\\", "++")
RUN_LINESTYLES = ("-", "--", ":", "-.")


def style(transport: str) -> TransportStyle:
    """The style of ``transport``; unknown names get a spare colour, stable per name."""
    known = _BY_NAME.get(transport)
    if known is not None:
        return known
    spare = _SPARE[sum(map(ord, transport)) % len(_SPARE)]
    return TransportStyle(transport, transport, spare, "P", "-")


def color(transport: str) -> str:
    return style(transport).color


def label(transport: str) -> str:
    return style(transport).label


def order_transports(names) -> list[str]:
    """Known transports in report order, then any others alphabetically."""
    names = set(names)
    known = [t.name for t in TRANSPORTS if t.name in names]
    return known + sorted(names - set(known))
