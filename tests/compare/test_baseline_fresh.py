"""The committed baseline (results/baselines/ci) still describes the wire format of this code.

`make ci-bench` without BASE compares a fresh ``scenarios/ci.toml`` run with the committed
baseline. Timing figures there are another machine's; bytes and requests per message are
not: they are the wire format, the same on any machine. A change to the format (the epoch
cursor made every poll ~10 B longer) must come with a refreshed baseline, or `make ci-bench`
fails every clean checkout on a "regression" that is the code itself. This test runs one short
real point per transport (the ci profile's rate and warm-up, so sequence numbers have the
baseline's digit counts) and compares the figures that do not depend on timing:

- long polling: request bytes per poll (``bytes_up / requests``), response overhead per
  poll (``(bytes_down - message bytes) / requests``), requests per delivered message;
- every stream: framing bytes per delivered message (``overhead_down_per_msg``), requests
  per message (~0);
- the publisher: bytes of a publish beyond the message, requests per published message;
- the message itself (``message_bytes``).

Checked by hand that it fails when the long-poll request line gains one byte
(docs/regression.md, "Refreshing the baseline").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from duplexbench.measure.results import load_run
from tests._timeouts import scaled

from .realruns import ROOT, new_root

pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(120))]

BASELINE = ROOT / "results" / "baselines" / "ci"

#: (figure, transports, tolerance): the tolerance is below one byte (a byte added anywhere
#: must show) and above the baseline's own spread between repeats (<= 0.25 B, requests
#: per poll 0.97-1.00 from batching).
FIGURES = (
    ("request bytes per poll", ("longpoll",), 0.5),
    ("response overhead bytes per poll", ("longpoll",), 0.5),
    ("framing bytes per message", ("sse", "ndjson", "websocket"), 0.5),
    ("requests per message", ("longpoll",), 0.1),
    ("requests per message", ("sse", "ndjson", "websocket"), 0.01),
    ("publish overhead bytes per message", ("longpoll", "sse", "ndjson", "websocket"), 0.5),
    ("publish requests per message", ("longpoll", "sse", "ndjson", "websocket"), 0.01),
    ("message bytes", ("longpoll", "sse", "ndjson", "websocket"), 1.5),
)


def figures(summary: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(transport, figure) -> its mean over the run's repeats."""
    out = {}
    for transport, rows in summary.groupby("transport"):
        mean = rows.select_dtypes("number").mean()
        requests = mean["http_requests_per_msg"]
        values = {
            "requests per message": requests,
            "framing bytes per message": mean["overhead_down_per_msg"],
            "publish overhead bytes per message": mean["pub_bytes_up_per_msg"] - mean["message_bytes"],
            "publish requests per message": mean["pub_http_requests_per_msg"],
            "message bytes": mean["message_bytes"],
        }
        if requests > 0.5:  # a request per message: per-request figures
            values["request bytes per poll"] = mean["bytes_up_per_msg"] / requests
            values["response overhead bytes per poll"] = mean["overhead_down_per_msg"] / requests
        out.update({(str(transport), name): float(v) for name, v in values.items()})
    return out


@pytest.fixture(scope="module")
def fresh():
    """scenarios/ci.toml, 3 s per transport, one repeat: this code's figures.

    3 s, not 1: a poll sent in the window but answered after it counts its bytes and not its
    request, one per subscriber at most; over 1 s (~100 polls per subscriber) that is up to
    +1 B per poll, the size of the change this test must catch (seen: 100.0 against the
    baseline's 99.08 on a loaded machine, 99.0 with 3 s)."""
    root = new_root("duplexbench-baseline-fresh-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUPLEXBENCH_INJECT_")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "duplexbench", "run", "scenarios/ci.toml", "--duration", "3",
             "--repeats", "1", "--out", str(root / "run"), "--no-report", "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=scaled(100))
        assert done.returncode == 0, f"ci run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        yield load_run(root / "run").summary
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_committed_baseline_matches_this_codes_wire_format(fresh):
    assert (BASELINE / "summary.csv").exists(), f"{BASELINE} is missing: record it with `make baseline`"
    before, now = figures(load_run(BASELINE).summary), figures(fresh)
    stale = []
    for name, transports, tolerance in FIGURES:
        for transport in transports:
            old, new = before.get((transport, name)), now.get((transport, name))
            assert new is not None, f"the fresh run has no {name} for {transport}"
            if old is None or not abs(new - old) <= tolerance:
                stale.append(f"{transport} {name}: baseline {old if old is None else round(old, 2)}, "
                             f"this code {new:.2f} (tolerance {tolerance:g})")
    assert not stale, (
        f"{BASELINE.relative_to(ROOT)} is stale: its wire figures are not what this code "
        "produces, so `make ci-bench` would report the code itself as a regression:\n  "
        + "\n  ".join(stale)
        + "\nRefresh it with `make baseline` (on a quiet machine) and commit it, saying why.")
