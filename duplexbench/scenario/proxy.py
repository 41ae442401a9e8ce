"""The ``[proxy]`` table of a scenario and the load points it sweeps.

```toml
[proxy]
kind = ["none", "nginx"]       # "none" = direct; a list sweeps (direct and through nginx)
buffering = [true, false]      # nginx proxy_buffering on/off (a sweep)
accel_header = [true, false]   # the server's X-Accel-Buffering: no on streams (a sweep)
gzip = [false, true]           # nginx gzip for JSON / event streams (a sweep; clients that
                               # send Accept-Encoding, i.e. browsers, get compressed bodies)
```

Kept apart from scenario.py (which calls :func:`parse_proxy` and
:func:`proxy_variants`) so that the proxy's knobs live beside the proxy. The
sweep is per transport, like long polling's keep-alive: ``accel_header`` only
changes stream responses, so it is swept for ``sse`` and ``ndjson`` only, and a
direct point runs once (neither knob means anything without a proxy), the
header is swept only where nginx buffers (``buffering = true``: with buffering
off nginx ignores it), and ``gzip`` only for HTTP transports (an upgraded
WebSocket connection is a tunnel nginx does not compress).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PROXY_KINDS", "ProxyOptions", "ProxyOptionsError", "parse_proxy",
           "proxy_variants"]

PROXY_KINDS = ("none", "nginx")
#: Transports whose responses carry X-Accel-Buffering (the streaming ones).
STREAMING = ("sse", "ndjson")
_KEYS = ("kind", "buffering", "accel_header", "gzip")


class ProxyOptionsError(ValueError):
    """A bad ``[proxy]`` table; scenario.py prefixes the file name."""


@dataclass(frozen=True)
class ProxyOptions:
    kind: tuple[str, ...] = ("nginx",)
    buffering: tuple[bool, ...] = (True,)
    accel_header: tuple[bool, ...] = (True,)
    gzip: tuple[bool, ...] = (False,)


def _listed(table: dict, key: str, default: tuple, check, expected: str) -> tuple:
    if key not in table:
        return default
    value = table[key]
    values = value if isinstance(value, list) else [value]
    if not values or not all(check(v) for v in values) or len(set(values)) != len(values):
        raise ProxyOptionsError(f"key 'proxy.{key}': expected {expected}, each value once, "
                                f"got {value!r}")
    return tuple(values)


def parse_proxy(table: Any) -> ProxyOptions:
    """Validate a ``[proxy]`` table (a dict) into :class:`ProxyOptions`."""
    if not isinstance(table, dict):
        raise ProxyOptionsError(f"key 'proxy': expected a table ([proxy]), got {table!r}")
    unknown = [k for k in table if k not in _KEYS]
    if unknown:
        raise ProxyOptionsError(f"unknown key 'proxy.{unknown[0]}' (known keys: {', '.join(_KEYS)})")
    d = ProxyOptions()
    is_bool = lambda v: isinstance(v, bool)  # noqa: E731
    return ProxyOptions(
        kind=_listed(table, "kind", d.kind, lambda v: v in PROXY_KINDS,
                     "one of " + ", ".join(repr(k) for k in PROXY_KINDS) + " or a list of them"),
        buffering=_listed(table, "buffering", d.buffering, is_bool,
                          "true, false or a list of them"),
        accel_header=_listed(table, "accel_header", d.accel_header, is_bool,
                             "true, false or a list of them"),
        gzip=_listed(table, "gzip", d.gzip, is_bool, "true, false or a list of them"),
    )


def proxy_variants(options: ProxyOptions | None, transport: str
                   ) -> list[tuple[str, bool | None, bool, bool]]:
    """(proxy, proxy_buffering, accel_header, gzip) for each point of ``transport``.

    ``proxy_buffering`` is None for a direct point; ``accel_header`` is True and
    ``gzip`` False wherever they cannot matter.
    """
    if options is None:
        return [("none", None, True, False)]
    variants: list[tuple[str, bool | None, bool, bool]] = []
    for kind in options.kind:
        if kind == "none":
            variants.append(("none", None, True, False))
            continue
        gzips = options.gzip if transport != "websocket" else (False,)
        for buffering in options.buffering:
            headers = options.accel_header if transport in STREAMING and buffering else (True,)
            for accel in headers:
                for gzip in gzips:
                    variants.append((kind, buffering, accel, gzip))
    return variants
