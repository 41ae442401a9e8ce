"""Browsers as clients: headless Chromium subscribing with its own WebSocket,
EventSource and fetch (docs/browser.md).

``python -m duplexbench.engines.browser SPEC.json OUT_DIR`` is the engine's entry point
(:mod:`duplexbench.engines.browser.engine`); :mod:`duplexbench.engines.browser.driver` launches
Debian's Chromium through Playwright; the pages are servers/pages/.
"""

from .driver import BrowserUnavailable, find_chromium
from .engine import main, run_point

__all__ = ["BrowserUnavailable", "find_chromium", "main", "run_point"]
