"""Checked reading of one TOML table: the converters and the checker behind scenario errors.

Every error a scenario can have is found here, up front, and names the file, the key
and what was expected (with a did-you-mean for unknown keys), so a typo costs a second,
not a benchmark. scenario.py says *which* keys exist; this module says how a value is
checked.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Callable

__all__ = [
    "NAME_PATTERN",
    "Checker",
    "Invalid",
    "ScenarioError",
    "boolean",
    "choice",
    "choices_list",
    "did_you_mean",
    "integer",
    "is_number",
    "list_of",
    "scenario_name",
    "nonneg_float",
    "one_of",
    "percent",
    "pos_float",
    "pos_int",
    "string",
]

# Scenario names become part of run ids and directory names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class ScenarioError(ValueError):
    """A scenario file (or override) that cannot be run; the message says why."""


class Invalid(Exception):
    """Raised by a converter; the checker turns it into a ScenarioError."""


class Checker:
    """Reads keys from one table, turning bad values into ScenarioError messages."""

    def __init__(self, source: str, data: Any, prefix: str = "") -> None:
        self.source = source
        self.data = data
        self.prefix = prefix

    def unknown(self, known: tuple[str, ...], prefix: str) -> None:
        for key in self.data:
            if key not in known:
                raise ScenarioError(
                    f"{self.source}: unknown key '{prefix}{key}'"
                    + did_you_mean(key, known)
                    + f" (known keys: {', '.join(k for k in known if k != 'path')})"
                )

    def get(self, key: str, convert: Callable[[Any], Any], expected: str, default: Any) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        try:
            return convert(value)
        except Invalid:
            # An empty list is a sweep over nothing: say so rather than just "got []".
            hint = " (an empty list sweeps nothing)" if value == [] else ""
            raise ScenarioError(
                f"{self.source}: key '{self.prefix}{key}': expected {expected}, "
                f"got {value!r}{hint}"
            ) from None

    def table(self, key: str, default: Any = "empty") -> "Checker | None":
        if key not in self.data:
            return None if default is None else Checker(self.source, {}, f"{key}.")
        value = self.data[key]
        if not isinstance(value, dict):
            raise ScenarioError(
                f"{self.source}: key '{key}': expected a table ([{key}]), got {value!r}"
            )
        return Checker(self.source, value, f"{key}.")


def did_you_mean(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def one_of(choices: tuple[str, ...]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


# Converters: return the clean value or raise Invalid. TOML booleans are Python
# bools, which are ints too, so numbers reject bools explicitly.

def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid
    return value


def pos_int(value: Any) -> int:
    if integer(value) <= 0:
        raise Invalid
    return value


def pos_float(value: Any) -> float:
    if not is_number(value) or value <= 0:
        raise Invalid
    return float(value)


def nonneg_float(value: Any) -> float:
    if not is_number(value) or value < 0:
        raise Invalid
    return float(value)


def percent(value: Any) -> float:
    if nonneg_float(value) > 100:
        raise Invalid
    return float(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid
    return value


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid
    return value


def scenario_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise Invalid
    return value


def choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise Invalid
        return value
    return convert


def list_of(item: Callable[[Any], Any]) -> Callable[[Any], tuple]:
    """A scalar or a non-empty list of scalars -> tuple (a list is a sweep)."""
    def convert(value: Any) -> tuple:
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise Invalid
        return tuple(item(v) for v in values)
    return convert


def choices_list(choices: tuple[str, ...]) -> Callable[[Any], tuple[str, ...]]:
    one = choice(choices)

    def convert(value: Any) -> tuple[str, ...]:
        values = list_of(one)(value)
        if len(set(values)) != len(values):
            raise Invalid
        return values
    return convert
