"""The words and numbers every report sentence shares: figures, ratios, transport names.

A module of its own so that the findings and the confidence wording beside them
(report/confidence.py) print a ratio, a figure and a transport the same way.
"""

from __future__ import annotations

import math

from . import colors

__all__ = ["TIE_TOLERANCE", "number", "format_ratio", "transport_name"]

#: Ratios within this of 1 are reported as "no clear difference".
TIE_TOLERANCE = 0.05


def number(value: float) -> str:
    """Three significant digits without exponents: 0.0118, 4.35, 17.6, 411, 2,370."""
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 0.001 or value == 0 else f"{value:.2e}"


def format_ratio(ratio: float) -> str:
    """3.1× — one decimal below 100, none above (precision the data does not have)."""
    return f"{ratio:,.1f}×" if ratio < 100 else f"{ratio:,.0f}×"


def _name(transport: str, capital: bool = False) -> str:
    text = colors.label(transport)
    return text[0].upper() + text[1:] if capital else text


def transport_name(transport: str, capital: bool = False) -> str:
    """"long polling", or "Long polling" to start a sentence."""
    text = colors.label(transport)
    return text[0].upper() + text[1:] if capital else text
