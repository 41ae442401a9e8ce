"""Request parsing shared by the handlers: every bad input becomes a 4xx with a reason.

Handlers raise :class:`BadRequest` (or the hub's errors) and the app's
middleware turns them into a small JSON body ``{"error": "..."}``; nothing a
client sends can reach the catch-all 500.
"""

from __future__ import annotations

import json
import math

from aiohttp import web

from duplexbench.contract import ContractError, Cursor, parse_cursor, parse_uint, validate_topic

__all__ = [
    "BadRequest",
    "error_response",
    "query_cursor",
    "query_seconds",
    "query_topic",
    "json_response",
    "query_uint",
    "request_cursor",
]


class BadRequest(Exception):
    """A 4xx answer: ``status`` and a reason for the body (plus extra JSON fields)."""

    def __init__(self, reason: str, status: int = 400, headers: dict | None = None, **extra) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.extra = extra


def error_response(status: int, reason: str, headers: dict | None = None, **extra) -> web.Response:
    body = json.dumps({"error": reason, **extra}, ensure_ascii=False)
    return web.Response(
        status=status, text=body, content_type="application/json",
        headers={"Cache-Control": "no-cache", **(headers or {})},
    )


def json_response(status: int, obj: dict, headers: dict) -> web.Response:
    return web.Response(status=status, text=json.dumps(obj, ensure_ascii=False),
                        content_type="application/json", headers=headers)


def query_topic(request: web.Request) -> str:
    try:
        return validate_topic(request.query.get("topic"))
    except ContractError as exc:
        raise BadRequest(str(exc)) from None


def query_cursor(request: web.Request) -> Cursor | None:
    """``?cursor=E-N`` / ``N``; absent -> None."""
    try:
        return parse_cursor(request.query.get("cursor"), "cursor")
    except ContractError as exc:
        raise BadRequest(str(exc)) from None


def request_cursor(request: web.Request) -> Cursor | None:
    """A non-empty ``Last-Event-ID`` wins over ``?cursor`` (an empty one counts as absent)."""
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if last_event_id:
        try:
            return parse_cursor(last_event_id, "Last-Event-ID")
        except ContractError as exc:
            raise BadRequest(str(exc)) from None
    return query_cursor(request)


def query_uint(request: web.Request, name: str) -> int | None:
    try:
        return parse_uint(request.query.get(name), name)
    except ContractError as exc:
        raise BadRequest(str(exc)) from None


def query_seconds(request: web.Request, name: str, default: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise BadRequest(f"bad {name} {text[:40]!r}: expected a non-negative number of seconds")
    return value
