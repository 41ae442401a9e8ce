"""The ``http`` dimension of a scenario: which points can run over HTTP/2, refused up front.

HTTP/2 is swept like ``[server] tls`` (``http = ["1.1", "2"]``, docs/http2.md), but not
every combination has an HTTP/2 path: the aiohttp servers speak HTTP/1.1 only, so their
HTTP/2 points go through nginx (``[proxy] kind = "nginx"``, which terminates h2 / h2c and
proxies over HTTP/1.1 keep-alive), while the Node reference speaks HTTP/2 itself and is
measured direct. What can never run (long polling with Connection: close, a WebSocket
publisher under HTTP/2, Locust, a browser without TLS) is refused when the scenario is
loaded, with the key to change, rather than after minutes of measuring or, worse, as a
silent HTTP/1.1 point.
"""

from __future__ import annotations

from typing import Any

from .check import ScenarioError

__all__ = ["MAX_STREAMS", "OUTSIDE_STACK", "check_engine", "check_http", "http_path"]

#: Most subscriptions one HTTP/2 connection carries (LoadSpec streams_per_connection).
MAX_STREAMS = 128
#: The ``stack`` of the points of a run against an outside server (``--server-url``): it
#: answers at whatever HTTP versions it speaks (the probe checked ALPN h2 first).
OUTSIDE_STACK = "outside"


def http_path(stack: str, proxy: str, http: str) -> bool:
    """Whether a point of this stack, proxy and HTTP version is swept.

    The aiohttp servers have HTTP/2 only behind nginx; the Node reference runs direct
    (it is the reference implementation, not a deployment behind a front); an outside
    server (``--server-url``) runs direct at every version it was probed for.
    """
    if stack == OUTSIDE_STACK:
        return True
    if stack == "node":
        return proxy == "none"
    return http == "1.1" or proxy != "none"


def check_http(source: str, *, http: tuple[str, ...], streams: int, server: Any,
               proxy: Any, transports: tuple[str, ...], keepalive: tuple[bool, ...],
               upstream: str, pattern: str, engines: tuple[str, ...],
               tls: tuple[bool, ...]) -> None:
    """Raise ScenarioError for an ``http`` / ``stack`` combination that cannot run."""
    kinds = proxy.kind if proxy is not None else ("none",)
    if streams > MAX_STREAMS:
        raise ScenarioError(f"{source}: key 'streams_per_connection': expected an integer "
                            f"from 1 to {MAX_STREAMS}, got {streams}")
    if streams > 1 and "2" not in http:
        raise ScenarioError(f"{source}: key 'streams_per_connection': {streams} streams on one "
                            "connection need HTTP/2: add http = [\"1.1\", \"2\"] or http = \"2\"")
    stacks = server.stack
    if not any(http_path(stack, kind, "1.1") for stack in stacks for kind in kinds):
        raise ScenarioError(f"{source}: key 'server.stack': the Node reference is measured "
                            "direct: expected [proxy] kind to include \"none\"")
    if "2" not in http:
        return
    if not any(http_path(stack, kind, "2") for stack in stacks for kind in kinds):
        raise ScenarioError(
            f"{source}: key 'http': the aiohttp servers speak HTTP/1.1 only, so HTTP/2 runs "
            "through nginx ([proxy] kind = \"nginx\") or direct to the Node reference "
            "([server] stack = \"node\")")
    if "longpoll" in transports and False in keepalive:
        raise ScenarioError(
            f"{source}: key 'longpoll.keepalive': false (Connection: close per poll) has no "
            "HTTP/2 form; expected keepalive = true with http = \"2\"")
    if upstream == "transport" and pattern == "fanout" and "websocket" in transports:
        raise ScenarioError(
            f"{source}: key 'upstream': the publisher process publishes over RFC 6455 "
            "WebSockets only; with http = \"2\" expected upstream = \"post\" (or pattern "
            "echo / chat)")
    if "locust" in engines:
        raise ScenarioError(f"{source}: key 'engine': Locust speaks HTTP/1.1 only; with "
                            "http = \"2\" use the native or browser engine")
    if "browser" in engines and (False in tls or "nginx" not in kinds):
        raise ScenarioError(
            f"{source}: key 'engine': a browser negotiates HTTP/2 only over TLS (ALPN; no "
            "h2c): with http = \"2\" the browser engine needs [server] tls = true and "
            "[proxy] kind = \"nginx\"")


def check_engine(scenario: Any, engine: str) -> None:
    """Raise ScenarioError when the command line's engine cannot run the scenario's HTTP/2
    points (the scenario's own ``engine`` sweep is checked when it is loaded)."""
    if "2" not in scenario.http or scenario.engines:
        return
    check_http(scenario.path or scenario.name, http=scenario.http,
               streams=scenario.streams_per_connection, server=scenario.server,
               proxy=scenario.proxy, transports=scenario.transports,
               keepalive=scenario.longpoll.keepalive, upstream=scenario.upstream,
               pattern=scenario.pattern, engines=(engine,), tls=scenario.server.tls)
