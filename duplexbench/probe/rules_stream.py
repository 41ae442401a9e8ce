"""HTTP streaming rules: SSE and NDJSON framing, headers before the first message,
the SSE preamble and ids (``E-SEQ``), resume by cursor and ``Last-Event-ID``,
reset for another epoch, heartbeats after silence, 400/410 before streaming."""

from __future__ import annotations

import asyncio
import time

from .core import Ctx, check, expect_error, parse_json, rule, soon
from .envelopes import check_envelope, check_reset, fill

__all__: list[str] = []

ST = "stream"
SSE = {"Accept": "text/event-stream"}
NDJSON = {"Accept": "application/x-ndjson"}
HEAD_WAIT_S = 1.5  # a stream's head must come at once, before any message


async def _open(ctx: Ctx, query: str, headers: dict):
    conn, head, body = await asyncio.wait_for(ctx.open("/stream?" + query, headers), HEAD_WAIT_S)
    return conn, head, body


async def _blocks(body, count: int) -> list[list[str]]:
    """The next ``count`` SSE blocks (lines up to a blank line; LF framing as the contract writes)."""
    blocks = []
    for _ in range(count):
        raw = await body.take(b"\n\n")
        blocks.append(raw[:-2].decode("utf-8", "replace").split("\n"))
    return blocks


async def _lines(body, count: int, blank: bool = False) -> list[bytes]:
    """The next ``count`` NDJSON lines (non-empty ones unless ``blank``)."""
    lines: list[bytes] = []
    while len(lines) < count:
        line = (await body.take(b"\n"))[:-1]
        if blank or line.strip():
            lines.append(line)
    return lines


def _event_seqs(ctx: Ctx, blocks: list[list[str]], topic: str) -> list[int]:
    seqs = []
    for block in blocks:
        data = [ln[5:].lstrip(" ") for ln in block if ln.startswith("data:")]
        if not data:
            continue
        env = check_envelope("\n".join(data).encode(), topic=topic)
        ids = [ln[3:].lstrip(" ") for ln in block if ln.startswith("id:")]
        check(ids == [f"{ctx.epoch}-{env['seq']}"], "SSE event id is E-SEQ", f"{ctx.epoch}-{env['seq']}", ids)
        seqs.append(env["seq"])
    return seqs


@rule("sse.headers-first", "SSE: 200 text/event-stream, no-cache, head sent before any message", ST)
async def _sse_head(ctx: Ctx) -> None:
    _, head, _ = await _open(ctx, f"topic={ctx.topic('sh')}", SSE)
    check(head.status == 200, "SSE status", 200, head.status)
    check((head.get("content-type") or "").startswith("text/event-stream"), "SSE Content-Type",
          "text/event-stream", head.get("content-type"))
    check("no-cache" in (head.get("cache-control") or ""), "SSE Cache-Control", "no-cache",
          head.get("cache-control"))


@rule("ndjson.headers-first", "NDJSON (Accept or none): 200 application/x-ndjson chunked, head at once", ST)
async def _nd_head(ctx: Ctx) -> None:
    for headers in (NDJSON, {}):
        _, head, _ = await _open(ctx, f"topic={ctx.topic('nh')}", headers)
        what = f"NDJSON ({'Accept' if headers else 'no Accept'})"
        check(head.status == 200, f"{what} status", 200, head.status)
        check((head.get("content-type") or "").startswith("application/x-ndjson"), f"{what} Content-Type",
              "application/x-ndjson", head.get("content-type"))
        check("chunked" in (head.get("transfer-encoding") or ""), f"{what} Transfer-Encoding",
              "chunked", head.get("transfer-encoding"))
        check("no-cache" in (head.get("cache-control") or ""), f"{what} Cache-Control", "no-cache",
              head.get("cache-control"))


@rule("stream.epoch-header", "SSE and NDJSON 200s carry Duplexbench-Epoch", ST)
async def _stream_epoch(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    for headers in (SSE, NDJSON):
        _, head, _ = await _open(ctx, f"topic={ctx.topic('se')}", headers)
        check(head.get("duplexbench-epoch") == epoch, f"Duplexbench-Epoch ({headers['Accept']})",
              epoch, head.get("duplexbench-epoch"))


@rule("sse.preamble", "SSE starts 'retry: 1000\\nid: E-N\\n\\n' (N = where the stream starts)", ST)
async def _preamble(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("pre")
    last = await ctx.publish_many(topic, 2)
    for query, n in ((f"topic={topic}", last), (f"topic={topic}&cursor={epoch}-1", 1)):
        _, _, body = await _open(ctx, query, SSE)
        want = f"retry: 1000\nid: {epoch}-{n}\n\n".encode()
        got = await body.take(b"\n\n")
        check(got == want, f"first bytes of /stream?{query}", want, got[:80])


@rule("sse.events", "SSE: one 'id: E-SEQ\\ndata: ENVELOPE\\n\\n' event per message, as published", ST)
async def _sse_events(ctx: Ctx) -> None:
    ctx.need_epoch()
    topic = ctx.topic("ev")
    _, _, body = await _open(ctx, f"topic={topic}", SSE)
    await _blocks(body, 1)  # the preamble
    for i in range(2):
        await ctx.publish(topic, f"e{i}")
    blocks = await _blocks(body, 2)
    check(_event_seqs(ctx, blocks, topic) == [1, 2], "SSE events", [1, 2], blocks)


@rule("sse.resume", "Last-Event-ID: E-N or N resumes after N; it wins over ?cursor", ST)
async def _sse_resume(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("lei")
    await ctx.publish_many(topic, 3)
    for lei, query, want in ((f"{epoch}-1", "", [2, 3]), ("1", "", [2, 3]),
                             (f"{epoch}-2", f"&cursor={epoch}-0", [3])):
        _, head, body = await _open(ctx, f"topic={topic}{query}", {**SSE, "Last-Event-ID": lei})
        check(head.status == 200, f"Last-Event-ID: {lei} status", 200, head.status)
        blocks = await soon(_blocks(body, 1 + len(want)), f"retained events after {lei}")
        check(_event_seqs(ctx, blocks, topic) == want, f"events after Last-Event-ID: {lei}{query}",
              want, blocks)


@rule("sse.empty-last-event-id", "an empty Last-Event-ID is ignored (?cursor applies)", ST)
async def _sse_empty(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("empty")
    await ctx.publish_many(topic, 3)
    _, head, body = await _open(ctx, f"topic={topic}&cursor={epoch}-1", {**SSE, "Last-Event-ID": ""})
    check(head.status == 200, "status with an empty Last-Event-ID", 200, head.status)
    blocks = await soon(_blocks(body, 3), "retained events after the cursor")
    check(_event_seqs(ctx, blocks, topic) == [2, 3], "events", [2, 3], blocks)


@rule("ndjson.lines", "NDJSON: one envelope per line as published; ?cursor=E-N / N resumes", ST)
async def _nd_lines(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("nl")
    _, _, body = await _open(ctx, f"topic={topic}", NDJSON)
    await ctx.publish_many(topic, 2)
    seqs = [check_envelope(x, topic=topic)["seq"] for x in await _lines(body, 2)]
    check(seqs == [1, 2], "NDJSON lines", [1, 2], seqs)
    for cursor in (f"{epoch}-1", "1"):
        _, _, body = await _open(ctx, f"topic={topic}&cursor={cursor}", NDJSON)
        seqs = [check_envelope(x)["seq"] for x in await soon(_lines(body, 1), f"NDJSON cursor={cursor}")]
        check(seqs == [2], f"NDJSON cursor={cursor}", [2], seqs)


@rule("stream.ahead", "a cursor ahead of the topic is 400 {error, last_seq} before streaming", ST)
async def _ahead(ctx: Ctx) -> None:
    topic = ctx.topic("sa")
    seq = await ctx.publish(topic)
    for headers in (SSE, NDJSON):
        obj = expect_error(await ctx.request("GET", f"/stream?topic={topic}&cursor={seq + 3}", headers),
                           400, f"{headers['Accept']} cursor ahead")
        check(obj.get("last_seq") == seq, "400 last_seq", seq, obj.get("last_seq"))


@rule("sse.reset", "SSE, another epoch: 'retry: 1000\\n\\nevent: reset\\nid: E-K\\ndata: RESET\\n\\n', "
      "then messages after K", ST)
async def _sse_reset(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("sr")
    last = await ctx.publish_many(topic, 2)
    _, head, body = await _open(ctx, f"topic={topic}&cursor={ctx.other_epoch()}-9", SSE)
    check(head.status == 200, "SSE status with another epoch's cursor", 200, head.status)
    first, block = await soon(_blocks(body, 2), "the reset event")
    check(first == ["retry: 1000"] and block[:1] == ["event: reset"], "reset stream starts",
          "retry: 1000\\n\\nevent: reset\\n", (first, block[:1]))
    fields = dict(ln.split(": ", 1) for ln in block if ": " in ln)
    k = check_reset(parse_json(fields.get("data", ""), "reset data"), epoch, "SSE reset")
    check(fields.get("id") == f"{epoch}-{k}", "reset event id", f"{epoch}-{k}", fields.get("id"))
    blocks = await soon(_blocks(body, last - k), "retained events after the reset")
    check(_event_seqs(ctx, blocks, topic) == list(range(k + 1, last + 1)), "messages after the reset",
          list(range(k + 1, last + 1)), blocks)


@rule("ndjson.reset", "NDJSON, another epoch: the first line is the reset object, then messages after K", ST)
async def _nd_reset(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("nr")
    last = await ctx.publish_many(topic, 2)
    _, head, body = await _open(ctx, f"topic={topic}&cursor={ctx.other_epoch()}-9", NDJSON)
    check(head.status == 200, "NDJSON status with another epoch's cursor", 200, head.status)
    first = (await soon(_lines(body, 1), "the reset line"))[0]
    k = check_reset(parse_json(first, "first NDJSON line"), epoch, "NDJSON reset")
    lines = await soon(_lines(body, last - k), "retained lines after the reset")
    seqs = [check_envelope(x)["seq"] for x in lines]
    check(seqs == list(range(k + 1, last + 1)), "messages after the reset", list(range(k + 1, last + 1)), seqs)


@rule("stream.retention", "older than retention: 410 before streaming; cursor=0 streams from the oldest",
      ST, needs="retention", timeout_s=20)
async def _retention(ctx: Ctx) -> None:
    retention = ctx.options.retention
    topic = ctx.topic("sret")
    last = await fill(ctx, topic, retention + 3)
    oldest = last - retention + 1
    for headers in (SSE, NDJSON):
        obj = expect_error(await ctx.request("GET", f"/stream?topic={topic}&cursor=1", headers), 410,
                           f"{headers['Accept']} cursor older than retention")
        check(obj.get("oldest_seq") == oldest, "410 oldest_seq", oldest, obj.get("oldest_seq"))
    _, head, body = await _open(ctx, f"topic={topic}&cursor=0", NDJSON)
    check(head.status == 200, "cursor=0 streams (never 410)", 200, head.status)
    first = check_envelope((await soon(_lines(body, 1), "cursor=0 lines"))[0])["seq"]
    check(first == oldest, "cursor=0 starts at the oldest retained", oldest, first)


def _hb_timeout(ctx: Ctx) -> float:
    return 3 * (ctx.options.heartbeat_s or 0) + 4


@rule("stream.heartbeat", "a heartbeat (SSE ': comment', NDJSON blank line) after --heartbeat s of silence",
      ST, needs="heartbeat_s", timeout_s=60)
async def _heartbeat(ctx: Ctx) -> None:
    hb = ctx.options.heartbeat_s
    async with asyncio.timeout(_hb_timeout(ctx)):
        await asyncio.gather(_hb_one(ctx, hb, True), _hb_one(ctx, hb, False))


async def _hb_one(ctx: Ctx, hb: float, sse: bool) -> None:
    name = "SSE" if sse else "NDJSON"
    topic = ctx.topic("hb")
    _, _, body = await _open(ctx, f"topic={topic}", SSE if sse else NDJSON)
    if sse:
        await _blocks(body, 1)  # preamble
    opened = time.monotonic()
    await _next_heartbeat(body, sse, name, hb + 1.5)
    first = time.monotonic() - opened
    check(first >= 0.5 * hb, f"{name}: no heartbeat before --heartbeat s of silence", f">= {hb:g} s",
          f"{first:.2f} s")
    # A message resets the silence: the next heartbeat comes ~hb after it, not on a fixed clock.
    # Timed from the message's arrival (the client's view of the server's last write). A client
    # that could not read for a while (a loaded machine) sees message and heartbeat together:
    # once more, then. A server on a fixed clock fails both times (0.5 hb after each message).
    pending = False  # a heartbeat was read before the message: the message is still to come
    for attempt in range(2):
        if not pending:
            await asyncio.sleep(0.5 * hb)
            await ctx.publish(topic, f"beat {attempt}")
        sent = time.monotonic()
        arrived = await _next_heartbeat(body, sse, name, hb + 1.5, skip_message=True)
        pending = arrived is None
        after = time.monotonic() - (arrived if arrived is not None else sent)
        if after >= 0.75 * hb:
            break
    check(after >= 0.75 * hb, f"{name}: heartbeat timed from the last write", f"~{hb:g} s after the message",
          f"{after:.2f} s")


async def _next_heartbeat(body, sse: bool, name: str, wait_s: float,
                          skip_message: bool = False) -> float | None:
    """Wait for the next heartbeat; with ``skip_message``, one message may come first: the
    time it arrived is returned (None: none came)."""
    arrived = None
    try:
        async with asyncio.timeout(wait_s):
            while True:
                if sse:
                    block = (await _blocks(body, 1))[0]
                    if all(ln.startswith(":") for ln in block if ln):
                        return arrived
                else:
                    line = (await _lines(body, 1, blank=True))[0]
                    if not line.strip():
                        return arrived
                check(skip_message, f"{name}: only a heartbeat while idle", "heartbeat", "a message")
                skip_message, arrived = False, time.monotonic()
    except (TimeoutError, asyncio.TimeoutError):
        check(False, f"{name} heartbeat", f"within {wait_s:g} s", "nothing")
