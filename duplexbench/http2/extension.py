"""The ``http`` dimension of a point as a point extension (docs/http2.md).

A point of ``http = "2"`` speaks HTTP/2 wherever its path offers it, and says so in its
row; it never falls back to HTTP/1.1 silently:

- the Node reference (``[server] stack = "node"``) speaks HTTP/2 itself: TLS points start
  it with ``--http2`` (ALPN h2 beside http/1.1 on its port), cleartext points with
  ``--h2c-port 0`` and the clients use that h2c port (prior knowledge); WebSocket runs as
  RFC 8441 extended CONNECT;
- the aiohttp servers run behind nginx (proxies/extension.py sets up h2 / h2c there);
  nginx 1.22 has no RFC 8441, so a WebSocket point there is an HTTP/1.1 upgrade and its
  row says "HTTP/1.1 upgrade: this path has no RFC 8441".

Columns: ``http`` (what the point asked for), ``streams_per_connection``, ``stack``,
``ws_over`` (WebSocket rows: how the WebSocket was opened).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..console import Column, insert_column
from ..runner.extension import PointContext, PointData, PointExtension
from ..runner.outcome import PointFailed
from ..scenario.http import OUTSIDE_STACK

__all__ = ["HttpExtension", "NO_RFC8441", "ROW_FIELDS", "client_http"]

#: summary.csv columns this extension fills.
ROW_FIELDS = ("http", "streams_per_connection", "stack", "ws_over")
#: The WebSocket note of an HTTP/2 point whose path cannot carry RFC 8441.
NO_RFC8441 = "HTTP/1.1 upgrade: this path has no RFC 8441"


def _rfc8441(point: Any, outside_rfc8441: bool = False) -> bool:
    """Whether the point's path offers WebSocket over HTTP/2: the Node reference, or an
    outside server whose probe passed the RFC 8441 rule."""
    stack = getattr(point, "stack", "python")
    return stack == "node" or (stack == OUTSIDE_STACK and outside_rfc8441)


def client_http(point: Any, outside_rfc8441: bool = False) -> str:
    """The HTTP version the load generator speaks for ``point``."""
    http = getattr(point, "http", "1.1")
    if http == "2" and point.transport == "websocket" and not _rfc8441(point, outside_rfc8441):
        return "1.1"
    return http


def _ws_over(point: Any, outside_rfc8441: bool = False) -> str:
    if point.transport != "websocket":
        return ""
    if getattr(point, "http", "1.1") != "2":
        return "HTTP/1.1 upgrade"
    return ("RFC 8441 (HTTP/2 extended CONNECT)" if _rfc8441(point, outside_rfc8441)
            else NO_RFC8441)


class HttpExtension(PointExtension):
    """The HTTP version and server stack of each point: server flags, the clients' spec,
    the Node reference's h2c URL, and the row's columns."""

    name = "http"

    def __init__(self, outside_rfc8441: bool = False) -> None:
        #: An outside server (--server-url) that passed the probe's RFC 8441 rule.
        self.outside_rfc8441 = outside_rfc8441

    def server_args(self, point: Any) -> list[str]:
        if getattr(point, "stack", "python") != "node" or point.http != "2":
            return []
        return ["--http2"] if point.tls else ["--h2c-port", "0"]

    def spec_fields(self, point: Any) -> dict:
        http = client_http(point, self.outside_rfc8441)
        return {"http": http,
                "streams_per_connection": point.streams_per_connection if http == "2" else 1}

    @contextlib.contextmanager
    def open(self, ctx: PointContext) -> Iterator[None]:
        point = ctx.point
        if getattr(point, "stack", "python") == "node" and point.http == "2" and not point.tls:
            h2c = getattr(ctx.server, "h2c_url", "")
            if not h2c:
                raise PointFailed("the Node reference named no h2c listener (--h2c-port)")
            ctx.sub_url = ctx.pub_url = h2c
        yield

    def contribute(self, ctx: PointContext, row: dict, data: PointData | None) -> dict:
        point = ctx.point
        return {"http": getattr(point, "http", "1.1"),
                "streams_per_connection": getattr(point, "streams_per_connection", 1),
                "stack": getattr(point, "stack", "python"),
                "ws_over": _ws_over(point, self.outside_rfc8441)}

    def notes(self, ctx: PointContext, row: dict, data: PointData | None) -> list[str]:
        return [NO_RFC8441] if _ws_over(ctx.point, self.outside_rfc8441) == NO_RFC8441 else []

    def table(self, rows: list[dict], columns: list) -> tuple[list[dict], list]:
        if any(str(r.get("stack") or "python") != "python" for r in rows):
            columns = insert_column(columns, Column("stack", "stack", "{}"),
                                    after=("transport", "engine"))
        if any(str(r.get("http") or "1.1") != "1.1" for r in rows):
            columns = insert_column(columns, Column("http", "http", "{}"),
                                    after=("transport", "engine"))
        return rows, columns
