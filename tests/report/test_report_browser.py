"""report.html in a real headless Chromium: every image decodes, the summary table is there.

The page's inline script sets ``data-images-ok`` on <body> after checking each
<img> (complete and naturalWidth > 0); ``--dump-dom`` shows the DOM after load.
A screenshot is saved beside the report for a person to look at.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from duplexbench.machine.parts import find_chromium
from duplexbench.report import build_report
from _parts import needs

pytestmark = pytest.mark.browser

TIMEOUT_S = 90 * float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))


CHROMIUM = find_chromium()


def _run(tmp_path, *args: str) -> str:
    # Without these flags Chromium waits for network services the machine does not have.
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs("chromium")  # make test installs it (make setup); otherwise the skip says how
@pytest.mark.parametrize("name", ["synthetic-a", "synthetic-incomplete"])
def test_report_html_in_chromium(fixture_run, tmp_path, name):
    run_dir = fixture_run(name)
    paths = build_report([run_dir])
    url = paths.html.resolve().as_uri()
    dom = _run(tmp_path, "--dump-dom", url)
    body = re.search(r"<body[^>]*>", dom).group(0)
    expected = len(paths.figures)
    assert f'data-images="{expected}"' in body, body
    assert f'data-images-loaded="{expected}"' in body, body
    assert 'data-images-ok="true"' in body, body
    assert re.search(r'<table class="summary-table" id="summary-table">', dom)
    assert dom.count("<img ") == expected > 0
    if name == "synthetic-incomplete":
        assert 'class="banner"' in dom and "INCOMPLETE RUN" in dom

    screenshot = run_dir / "report.png"
    _run(tmp_path, "--window-size=1280,2000", f"--screenshot={screenshot}", url)
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a rendered page, not a blank
