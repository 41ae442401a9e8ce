"""The Origin policy every endpoint applies (``/poll``, ``/stream``, ``/publish``, ``/ws``).

- No ``Origin`` header: allowed (not a browser, or a same-origin GET).
- Same origin: the Origin's scheme, host and port equal the server's own (the
  listener's scheme and the ``Host`` header; default ports 80/443 filled in).
- Listed with ``--allow-origin`` (``*`` = any): allowed cross-origin; responses
  carry the CORS headers below and ``OPTIONS`` is answered as a preflight.
- Anything else: ``403 {"error": "origin not allowed", "origin": ...}``, on
  every endpoint, ``OPTIONS`` and ``/publish`` included (a simple cross-site POST
  is refused, not executed).
"""

from __future__ import annotations

__all__ = [
    "CORS_PATHS",
    "PREFLIGHT_HEADERS",
    "cors_headers",
    "normalise_origin",
    "origin_decision",
]

#: The endpoints the policy covers.
CORS_PATHS = frozenset({"/poll", "/stream", "/publish", "/ws"})
#: The answer to an allowed ``OPTIONS`` (with :func:`cors_headers`), status 204.
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Last-Event-ID, Accept",
    "Access-Control-Max-Age": "600",
}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of ``scheme://host[:port]``, lower case; None if malformed."""
    scheme, sep, authority = origin.strip().rstrip("/").lower().partition("://")
    if not sep or scheme not in _DEFAULT_PORTS or not authority or "/" in authority:
        return None
    return _split_authority(scheme, authority)


def _split_authority(scheme: str, authority: str) -> tuple[str, str, int] | None:
    host, port = authority, _DEFAULT_PORTS[scheme]
    if authority.startswith("["):  # [v6]:port
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[: end + 1], authority[end + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif ":" in authority:
        host, _, port_text = authority.rpartition(":")
        if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
            return None
        port = int(port_text)
    if not host or "@" in host:
        return None
    return scheme, host, port


def origin_decision(origin: str | None, scheme: str, host_header: str,
                    allowlist: tuple[str, ...]) -> str:
    """``"none"`` (no Origin), ``"same"``, ``"cross"`` (allowed) or ``"deny"``."""
    if origin is None:
        return "none"
    mine = _split_authority(scheme, host_header.strip().lower()) if scheme in _DEFAULT_PORTS \
        and host_header else None
    theirs = normalise_origin(origin)
    if theirs is not None and mine is not None and theirs == mine:
        return "same"
    if "*" in allowlist:
        return "cross"
    if theirs is not None and any(normalise_origin(a) == theirs for a in allowlist):
        return "cross"
    return "deny"


def cors_headers(origin: str) -> dict[str, str]:
    """What every response to an allowed cross-origin request carries."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Vary": "Origin",
        "Access-Control-Expose-Headers": "Duplexbench-Epoch",
    }
