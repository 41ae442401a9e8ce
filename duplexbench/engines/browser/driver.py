"""Headless Chromium, driven by Playwright, with the pages a point needs.

Debian's Chromium (``/usr/bin/chromium``) is launched through Playwright for
Python with ``executable_path``: Playwright's own browser downloads are never
used (no ``playwright install``). Every page lives in its own browser context,
and a context has its own network state (cookies, cache, connection pool), so
subscribers on different pages do not share the six HTTP/1.1 connections that
Chromium allows per origin within one pool; subscribers on the *same* page do,
and so does that page's publisher (the connection limit scenario relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...machine.parts import CHROMIUM, find_chromium

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "BrowserUnavailable", "find_chromium", "launch",
           "open_pages", "Page", "trust_args"]

#: No sandbox (root in CI), no GPU, TCP only (no QUIC), and none of the background
#: traffic a fresh profile makes (updates, sync, first-run pages) in the measured path.
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Timers of pages that are not in front must not be throttled: every page is a client.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)
PAGE_PATH = "/pages/bench.html"


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing; the message says which and how to get it."""


def trust_args(url: str, ca_file: str) -> list[str]:
    """Chromium flags that trust the run's certificate and nothing else (docs/http2.md).

    Headless Chromium has no way to take a CA file, so the harness fetches the server's
    certificate, verifies it against ``ca_file`` here (a certificate the run's CA did not
    sign is refused), and hands Chromium that certificate's SPKI hash
    (``--ignore-certificate-errors-spki-list``): one key is trusted, never every error.
    """
    if not url.startswith("https:") or not ca_file:
        return []
    import base64
    import hashlib
    import socket
    import ssl
    from urllib.parse import urlsplit

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((parts.hostname, parts.port or 443), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=parts.hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return [f"--ignore-certificate-errors-spki-list={digest}"]


async def launch(playwright: Any, extra_args: tuple[str, ...] | list[str] = ()) -> Any:
    """Chromium via Playwright with the system executable (``extra_args``: e.g. trust_args)."""
    executable = find_chromium()
    if executable is None:
        raise BrowserUnavailable("Chromium is not installed (apt-get install chromium)")
    return await playwright.chromium.launch(executable_path=executable, headless=True,
                                            args=[*CHROMIUM_ARGS, *extra_args])


@dataclass
class Page:
    """One page: its subscribers (ids) and whether it publishes."""

    page: Any
    context: Any
    subscribers: list[int]
    publisher: bool

    async def call(self, method: str, arg: Any = None) -> Any:
        return await self.page.evaluate(f"(a) => window.duplexbench.{method}(a)", arg)


async def open_pages(browser: Any, base_url: str, layout: list[tuple[list[int], bool]],
                     timeout_s: float = 20.0) -> list[Page]:
    """One context + page per ``(subscriber ids, publishes)`` entry, each at the bench page."""
    pages: list[Page] = []
    for subscribers, publishes in layout:
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        response = await page.goto(base_url.rstrip("/") + PAGE_PATH, wait_until="load")
        if response is None or response.status != 200:
            status = response.status if response is not None else "no response"
            raise BrowserUnavailable(f"the server does not serve {PAGE_PATH} ({status}): "
                                     "servers/pages.py must be mounted")
        await page.wait_for_function("() => window.duplexbench !== undefined")
        pages.append(Page(page, context, list(subscribers), publishes))
    return pages
