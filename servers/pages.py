"""The browser client's pages, served by the server under test (same origin).

A browser subscribes with its own ``WebSocket``, ``EventSource`` and ``fetch``
only to an origin it trusts; serving the page from the server under test makes
every request same-origin, as an application's own page is (no CORS preflight,
no origin policy in the way, and the browser's per-origin connection limit
applies to subscribers and publishes together, which is what the connection
limit scenario measures). ``GET /pages/<name>`` serves the files in
``servers/pages/`` (a fixed list, read once; anything else is 404).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["PAGES_DIR", "add_page_routes"]

PAGES_DIR = Path(__file__).resolve().parent / "pages"
_TYPES = {".html": "text/html", ".js": "text/javascript"}


def _load() -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(PAGES_DIR.glob("*")):
        if path.suffix in _TYPES and path.is_file():
            files[path.name] = (path.read_bytes(), _TYPES[path.suffix])
    return files


def add_page_routes(app: web.Application) -> None:
    """Mount ``GET /pages/{name}`` on ``app``."""
    files = _load()

    async def page(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        body, content_type = files[name]
        return web.Response(body=body, content_type=content_type, charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    app.router.add_get("/pages/{name}", page, allow_head=False)
