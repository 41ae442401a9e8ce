"""Must show: a browser EventSource survives two server restarts and keeps receiving.

Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; never
``playwright install``) opens a page served from a tiny static server on
127.0.0.1; its EventSource subscribes to the duplexbench server's /stream,
which allows the page's origin (--allow-origin). While the test publishes
every 50 ms, the server is restarted twice: SIGTERM, 0.3 s down, a new process
on the same port (a new epoch). The page must see a reset event per restart,
keep its EventSource open, receive messages published after each restart, and
lose no message the server acknowledged.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from duplexbench.machine.parts import find_chromium
from duplexbench.procs.server import ServerProcess
from _parts import missing
from tests._timeouts import scaled

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOPIC = "browser-restarts"

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>sse restarts</title></head>
<body><script>
window.got = []; window.resets = []; window.opens = 0; window.errors = 0;
const es = new EventSource("SERVER/stream?topic=TOPIC");
window.es = es;
es.onopen = () => { window.opens += 1; };
es.onerror = () => { window.errors += 1; };
// ts exceeds 2^53: read only what the test needs (data), never the rounded number
es.onmessage = (e) => { window.got.push([e.lastEventId, JSON.parse(e.data).data]); };
es.addEventListener("reset", (e) => { window.resets.push(JSON.parse(e.data)); });
</script></body></html>"""


def _playwright():
    """(sync_playwright, chromium path), or skip saying what is missing."""
    reason = missing("chromium")  # Chromium and the playwright package
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    return sync_playwright, find_chromium()


class _PageServer:
    """The test page on its own origin (http.server in a thread: nothing to install).

    ``page`` is set once the duplexbench server's URL, which the page embeds, is known.
    """

    def __init__(self) -> None:
        self.page = b""
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(owner.page)))
                self.end_headers()
                self.wfile.write(owner.page)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_PageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Publisher(threading.Thread):
    """POSTs m0, m1, ... every 50 ms; remembers which ones the server acknowledged."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.url = ""
        self.acked: list[str] = []
        self.failed = 0
        self.index = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            data = f"m{self.index}"
            self.index += 1
            request = urllib.request.Request(f"{self.url}/publish?topic={TOPIC}",
                                             data=data.encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        self.acked.append(data)
            except (OSError, urllib.error.HTTPError):
                self.failed += 1  # the server is down: not acknowledged, so not owed


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + scaled(seconds)
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_eventsource_survives_two_restarts():
    sync_playwright, executable = _playwright()
    with _PageServer() as pages:
        args = ["--allow-origin", pages.origin, "--heartbeat", "1"]
        server = ServerProcess("all", args=args).start()
        port = urlsplit(server.url).port
        pages.page = PAGE.replace("SERVER", server.url).replace("TOPIC", TOPIC).encode()
        publisher = _Publisher()
        publisher.url = server.url
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                            headless=True)
                try:
                    page = browser.new_page()
                    page.goto(pages.origin + "/")
                    _wait(lambda: page.evaluate("window.opens") >= 1, 15, "the EventSource to open")
                    publisher.start()
                    _wait(lambda: page.evaluate("window.got.length") >= 5, 15, "first messages")
                    for restart in (1, 2):
                        server.stop(timeout=15)  # SIGTERM: graceful, flushes what it acknowledged
                        time.sleep(0.3)
                        server = ServerProcess("all", port=port, args=args).start()
                        mark = publisher.index
                        _wait(lambda: any(int(d[1:]) > mark for _, d in page.evaluate("window.got")),
                              20, f"a message published after restart {restart}")
                    time.sleep(1.0)
                    publisher.stopping.set()
                    publisher.join(5)
                    time.sleep(1.0)  # the last deliveries
                    got = page.evaluate("window.got")
                    resets = page.evaluate("window.resets")
                    state = page.evaluate("window.es.readyState")
                finally:
                    browser.close()
        finally:
            publisher.stopping.set()
            server.stop()
    assert state != 2, "the EventSource closed for good (readyState CLOSED)"
    assert len(resets) >= 2, f"expected a reset event per restart, got {resets}"
    epochs = [r.get("epoch") for r in resets]
    assert len(set(epochs)) == len(epochs), epochs  # every restart is a new epoch
    received = [d for _, d in got]
    missing = [d for d in publisher.acked if d not in set(received)]
    assert not missing, f"{len(missing)} acknowledged messages never reached the page: {missing[:10]}"
    assert len(received) == len(set(received)), "duplicates delivered"
    # the cursor the page holds is the new epoch's
    assert got[-1][0].split("-")[0] == epochs[-1]

