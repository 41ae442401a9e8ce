"""Run one load point with browsers as clients; write what the native loadgen writes.

``python -m duplexbench.engines.browser SPEC.json OUT_DIR [--per-page K]`` is a drop-in
for ``python -m clients.loadgen SPEC.json OUT_DIR`` (runner.loadgen_command
picks it for ``engine = "browser"``): the same JSON-line events on stdout
(ready, phase, progress, done) and the same ``counters.json`` +
``samples.parquet``, so metrics, reports and compare need not know a browser
ran (``engine = "browser"`` in the row).

Layout: the ``clients`` subscribers are spread over pages, ``per_page`` on each
(default 1: one page per subscriber), every page in its own browser context.
The first page also publishes, at the open-loop schedule the native engine
uses (clients/schedule.py), with ``fetch`` POSTs (or a WebSocket publish socket
when ``upstream = "transport"``) to the same origin.

Clock: every page reads ``performance.timeOrigin + performance.now()`` (wall
clock, 100 us resolution in Chromium); the publisher stamps ``ts`` with it and
records intended and actual send times, subscribers record receive times, so
intended, sent and received share one clock (``counters["clock"]``).
Accounting reuses the native engine's (clients/accounting.py): the page's raw
records go through the same per-subscriber seq checks, so lost, duplicated and
reordered mean exactly what they mean for the native engine. Wire bytes are not
observable from a page: the byte columns stay empty for browser rows.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["CLOCK", "account", "main", "page_layout", "run_point"]

CLOCK = ("performance.timeOrigin + performance.now() in Chromium (CLOCK_REALTIME as the "
         "renderer maps its monotonic clock; 100 us resolution)")
#: Seconds allowed for every subscriber to open (EventSource onopen, WebSocket onopen,
#: the first poll or stream request issued). Past it the point goes on and says so:
#: beyond Chromium's per-origin limit some never open, which is the finding.
OPEN_TIMEOUT_S = 15.0
#: Each page is a renderer process (~50 MB); past this many, put subscribers together
#: (``--per-page``) rather than exhaust a small machine's memory.
MAX_PAGES = 32
#: The publisher starts this long after it is told to (the first message is due then).
START_DELAY_MS = 100.0


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def page_layout(clients: int, per_page: int) -> list[tuple[list[int], bool]]:
    """``(subscriber ids, publishes)`` per page; the first page publishes."""
    per_page = max(1, per_page)
    pages = [list(range(k, min(clients, k + per_page))) for k in range(0, clients, per_page)]
    return [(ids, n == 0) for n, ids in enumerate(pages or [[]])]


class _Env:
    """What SubscriberLog reads from an envelope: seq, data (index prefix), ts."""

    __slots__ = ("seq", "data", "ts")

    def __init__(self, seq: int, index: int, ts: int) -> None:
        self.seq, self.data, self.ts = seq, f"{index}:", ts


def _ns(ms: float) -> int:
    return int(round(ms * 1e6))


def account(spec: Any, schedule: Any, results: list[dict], t0_ms: float) -> tuple[dict, Any]:
    """(counters, samples DataFrame) from the pages' raw records (native semantics)."""
    import numpy as np
    import pandas as pd

    from clients.accounting import Samples, SubscriberLog, tally

    from ...contract import encode_envelope, make_payload

    n, first = len(schedule), schedule.first_measured
    samples = Samples()
    logs: list[SubscriberLog] = []
    pub: dict = {}
    for result in results:
        if result.get("pub"):
            pub = result["pub"]
        for sub in result["subs"]:
            log = SubscriberLog(int(sub["sid"]), 0, samples, first, n)
            for seq, index, recv, ts in zip(sub["seq"], sub["index"], sub["recv"], sub["ts"]):
                log.on_message(_Env(int(seq), int(index), int(ts) if str(ts).isdigit() else 0),
                               _ns(recv))
            logs.append(log)
    logs.sort(key=lambda log: log.sid)
    ok = np.array(pub.get("ok") or [False] * n, dtype=bool)[:n]
    if len(ok) < n:
        ok = np.concatenate([ok, np.zeros(n - len(ok), dtype=bool)])
    totals = tally(logs, samples, np.zeros(n, dtype=np.int64), ok, first, n)
    start_ns = _ns(t0_ms)
    index = np.frombuffer(samples.index, dtype=np.int64).copy()
    intended = np.where((index >= 0) & (index < n),
                        start_ns + schedule.offsets_ns[np.clip(index, 0, max(0, n - 1))], -1)
    frame = pd.DataFrame({
        "subscriber": np.frombuffer(samples.subscriber, dtype=np.int64),
        "seq": np.frombuffer(samples.seq, dtype=np.int64),
        "index": index,
        "intended_ns": intended.astype(np.int64),
        "sent_ns": np.frombuffer(samples.sent_ns, dtype=np.int64),
        "recv_ns": np.frombuffer(samples.recv_ns, dtype=np.int64),
    })
    measured_ok = int(ok[first:].sum())
    attempted = int(pub.get("attempted", 0))
    mid = first + (n - first) // 2
    message_bytes = len(encode_envelope(mid + 1, spec.topic(0), time.time_ns(),
                                        make_payload(mid, spec.payload_bytes))) if n else 0
    subs = [s for r in results for s in r["subs"]]
    errors = [e for r in results for e in r.get("errors", [])]
    never_opened = sum(1 for s in subs if not s.get("opened"))
    requests = sum(int(s.get("requests", 0)) for s in subs)
    counters = {
        "complete": True,
        "reason": None,
        "engine": "browser",
        "transport": spec.transport,
        "pattern": spec.pattern,
        "clients": spec.clients,
        "published": measured_ok,
        "publish_failed": max(0, attempted - first - measured_ok) if attempted > first else 0,
        "published_total": int(ok.sum()),
        "scheduled": int(n - first),
        "expected": totals.expected,
        "delivered": totals.delivered,
        "lost": totals.lost,
        "duplicated": totals.duplicated,
        "reordered": totals.reordered,
        "message_bytes": message_bytes,
        "messages_up_on_sub": 0,
        "bytes_window": "measure",
        # A page cannot see bytes on the wire: only what it can count.
        "wire": {"sub": {"http_requests": requests} if spec.transport == "longpoll" else {},
                 "pub": {}},
        "wire_note": "bytes are not observable from a page; byte columns are empty",
        "reconnects": sum(int(s.get("reconnects", 0)) for s in subs),
        "resets": sum(int(s.get("resets", 0)) for s in subs),
        "errors": sum(int(s.get("errors", 0)) for s in subs) + int(pub.get("failed", 0)),
        "error_messages": errors[:20],
        "subscribers_never_opened": never_opened,
        # EventSource readyState per subscriber when the point ended (0 connecting, 1 open).
        "subscriber_states": [s.get("state") for s in subs],
        "measure_start_ns": start_ns + int(schedule.warmup_ns),
        "measure_end_ns": start_ns + int(schedule.total_ns),
        "clock": CLOCK,
        "samples": len(frame),
        "spec": json.loads(spec.to_json()),
    }
    return counters, frame


async def run_point(spec: Any, out_dir: Path, per_page: int = 1) -> dict:
    """Run the point in Chromium; writes counters.json and samples.parquet; returns counters."""
    from playwright.async_api import async_playwright

    from clients.output import write_counters
    from clients.schedule import make_schedule

    from .connections import OriginConnections
    from .driver import launch, open_pages, trust_args

    if spec.pattern != "fanout" or spec.topic_count != 1:
        raise ValueError("the browser engine runs pattern 'fanout' on one topic "
                         f"(got pattern {spec.pattern!r}, {spec.topic_count} topics)")
    layout = page_layout(spec.clients, per_page)
    if len(layout) > MAX_PAGES:
        raise ValueError(f"{spec.clients} subscribers at {per_page} per page need {len(layout)} "
                         f"pages; at most {MAX_PAGES} (set [engine] per_page, e.g. "
                         f"{math.ceil(spec.clients / MAX_PAGES)})")
    schedule = make_schedule(spec.rate, spec.warmup_s, spec.duration_s, spec.arrival, spec.seed)
    base = spec.sub_url.rstrip("/")
    cfg = {
        "transport": spec.transport, "base": "", "ws_base": "ws" + base[4:],
        "topic": spec.topic(0), "poll_timeout_s": spec.poll_timeout_s,
        "max_batch": spec.max_batch, "payload_bytes": spec.payload_bytes,
        "upstream": spec.upstream, "start_delay_ms": START_DELAY_MS,
        "offsets_ms": [o / 1e6 for o in schedule.offsets_ns.tolist()],
    }
    origin = OriginConnections(spec.sub_url)
    async with async_playwright() as playwright:
        browser = await launch(playwright, trust_args(spec.sub_url, spec.ca_file))
        version = browser.version
        try:
            pages = await open_pages(browser, base, layout)
            for page in pages:
                await page.call("start", {**cfg, "subscribers": page.subscribers})
            opened = await _wait_open(pages, spec.clients)
            origin.sample()
            _emit("ready", clients=spec.clients, opened=opened)
            publisher = next(p for p in pages if p.publisher)
            await publisher.call("publish", cfg)
            await _follow(pages, publisher, spec, schedule, origin)
            for page in pages:
                await page.call("stop")
            results = [await page.call("results") for page in pages]
        finally:
            await browser.close()
    t0_ms = float((results[0].get("pub") or {}).get("t0") or 0.0)
    counters, frame = account(spec, schedule, results, t0_ms)
    counters["per_page"] = per_page
    counters["pages"] = len(pages)
    counters["browser"] = {"version": version, "opened_at_start": opened}
    # The most TCP connections the browser held to the origin at once (the limit, counted).
    counters["origin_connections_max"] = origin.max
    counters["origin_connection_samples"] = origin.samples
    tmp = out_dir / "samples.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    tmp.replace(out_dir / "samples.parquet")
    write_counters(out_dir / "counters.json", counters)
    return counters


async def _stats(pages: list) -> list[dict]:
    return [await page.call("stats") for page in pages]


def _open_timeout() -> float:
    """OPEN_TIMEOUT_S, or ``DUPLEXBENCH_BROWSER_OPEN_TIMEOUT_S`` (tests)."""
    try:
        return float(os.environ.get("DUPLEXBENCH_BROWSER_OPEN_TIMEOUT_S") or OPEN_TIMEOUT_S)
    except ValueError:
        return OPEN_TIMEOUT_S


async def _wait_open(pages: list, clients: int) -> int:
    timeout = _open_timeout()
    deadline = time.monotonic() + timeout
    while True:
        opened = sum(s["opened"] for s in await _stats(pages))
        if opened >= clients or time.monotonic() > deadline:
            if opened < clients:
                _emit("error", message=f"{clients - opened} of {clients} subscribers did not "
                                       f"open within {timeout:g} s; going on without them")
            return opened
        await asyncio.sleep(0.05)


async def _follow(pages: list, publisher: Any, spec: Any, schedule: Any,
                  origin: Any = None) -> None:
    """Phase events by the schedule; progress (and a count of the browser's connections to
    the origin); drain until all arrived or drain_s passed."""
    started = time.monotonic() + START_DELAY_MS / 1000
    marks = [("warmup", 0.0), ("measure", schedule.warmup_ns / 1e9),
             ("drain", schedule.total_ns / 1e9)]
    if schedule.warmup_ns == 0:
        marks = marks[1:]
    expected_all = len(schedule) * spec.clients
    drain_end = started + schedule.total_ns / 1e9 + spec.drain_s
    next_progress = 0.0
    while True:
        now = time.monotonic()
        while marks and now >= started + marks[0][1]:
            _emit("phase", phase=marks.pop(0)[0])
        if now >= next_progress:
            stats = await _stats(pages)
            sent = sum(s["sent"] for s in stats)
            delivered = sum(s["delivered"] for s in stats)
            _emit("progress", sent=sent, delivered=delivered)
            if origin is not None:
                origin.sample()
            next_progress = now + max(0.2, spec.progress_interval_s)
            publish_done = any(s["publish_done"] for s in stats)
            if not marks and (now >= drain_end or (publish_done and delivered >= expected_all)):
                return
        await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench.engines.browser",
        description="Run one load point (SPEC.json) with headless Chromium as the clients; "
                    "write counters.json + samples.parquet.")
    parser.add_argument("spec", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--poll-timeout", type=float, default=None, metavar="S",
                        help="long-poll timeout the pages ask for (default: the spec's)")
    parser.add_argument("--per-page", type=int, default=1, metavar="K",
                        help="subscribers per page (one page = one browser context; "
                             "the first page also publishes)")
    args = parser.parse_args(argv)
    from clients.spec import LoadSpec, SpecError

    try:
        spec = LoadSpec.from_file(args.spec)
    except SpecError as exc:
        print(f"browser engine: bad load spec: {exc}", file=sys.stderr)
        return 2
    if spec.transport == "tcp":  # the runner refuses it up front; a spec written by hand too
        print("browser engine: transport 'tcp' (plain TCP lines): a web page cannot open a plain "
              "TCP socket; run it with the native engine", file=sys.stderr)
        return 2
    if args.poll_timeout is not None:
        if not args.poll_timeout > 0:
            print("browser engine: --poll-timeout must be > 0", file=sys.stderr)
            return 2
        spec = dataclasses.replace(spec, poll_timeout_s=args.poll_timeout)
    if args.per_page < 1:
        print("browser engine: --per-page must be >= 1", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # SIGTERM from the runner: unwind through the finally that closes the browser.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        counters = asyncio.run(run_point(spec, args.out_dir, args.per_page))
    except ValueError as exc:
        print(f"browser engine: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - say what failed; the runner shows stderr's tail
        print(f"browser engine: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    _emit("done", complete=True, delivered=counters["delivered"], lost=counters["lost"],
          reason=None)
    return 0
