"""Long-polling rules: batches, holds, 204, ``max``, cursors (legacy ``N`` and ``E-N``),
410 for a cursor older than retention, reset for another epoch's cursor."""

from __future__ import annotations

import asyncio
import time

from .core import Ctx, check, expect_error, parse_json, rule, short
from .envelopes import check_envelope, check_reset, fill, split_array

__all__: list[str] = []

LP = "longpoll"


async def _poll(ctx: Ctx, query: str):
    return await ctx.request("GET", "/poll?" + query)


@rule("poll.batch", "cursor: 200 JSON array of the newer envelopes, oldest first, no-cache", LP)
async def _batch(ctx: Ctx) -> None:
    topic = ctx.topic("batch")
    await ctx.publish_many(topic, 3)
    resp = await _poll(ctx, f"topic={topic}&cursor=0&timeout=1")
    check(resp.status == 200, "poll status", 200, f"{resp.status} {short(resp.body)}")
    check((resp.get("content-type") or "").startswith("application/json"), "poll Content-Type",
          "application/json", resp.get("content-type"))
    check("no-cache" in (resp.get("cache-control") or ""), "poll Cache-Control", "no-cache",
          resp.get("cache-control"))
    seqs = [check_envelope(raw, topic=topic)["seq"] for raw in split_array(resp.body)]
    check(seqs == [1, 2, 3], "seqs in the batch", [1, 2, 3], seqs)


@rule("poll.204", "nothing newer: timeout=0 is 204 at once, timeout=0.5 is 204 after ~0.5 s", LP)
async def _204(ctx: Ctx) -> None:
    topic = ctx.topic("204")
    seq = await ctx.publish(topic)
    resp = await _poll(ctx, f"topic={topic}&cursor={seq}&timeout=0")
    check(resp.status == 204 and resp.body == b"", "timeout=0 answer", "204, no body",
          f"{resp.status} {short(resp.body)}")
    check(resp.elapsed_s < 1.0, "timeout=0 answers at once", "< 1 s", f"{resp.elapsed_s:.2f} s")
    resp = await _poll(ctx, f"topic={topic}&cursor={seq}&timeout=0.5")
    check(resp.status == 204, "timeout=0.5 answer", 204, resp.status)
    check(0.4 <= resp.elapsed_s < 2.5, "204 after the timeout", "~0.5 s", f"{resp.elapsed_s:.2f} s")


@rule("poll.hold", "a held poll is answered by the next publish", LP)
async def _hold(ctx: Ctx) -> None:
    topic = ctx.topic("hold")
    task = asyncio.ensure_future(_poll(ctx, f"topic={topic}&timeout=5"))
    await asyncio.sleep(0.3)
    check(not task.done(), "the poll is held", "still waiting", "answered early")
    published = time.monotonic()
    seq = await ctx.publish(topic, "wake")
    resp = await task
    check(resp.status == 200, "held poll answer", 200, resp.status)
    raws = split_array(resp.body)
    check(len(raws) == 1, "the batch holds the new message", 1, len(raws))
    check_envelope(raws[0], seq=seq, data="wake")
    waited = time.monotonic() - published
    check(waited < 1.5, "answered soon after the publish", "< 1.5 s", f"{waited:.2f} s")


@rule("poll.from-now", "no cursor = from now on: older messages are not returned", LP)
async def _from_now(ctx: Ctx) -> None:
    topic = ctx.topic("now")
    await ctx.publish_many(topic, 2)
    resp = await _poll(ctx, f"topic={topic}&timeout=0")
    check(resp.status == 204, "poll without cursor on a topic with old messages", 204,
          f"{resp.status} {short(resp.body)}")


@rule("poll.max", "max=K limits the batch; max above --max-batch is capped; max=0 is 400", LP)
async def _max(ctx: Ctx) -> None:
    topic = ctx.topic("max")
    await ctx.publish_many(topic, 5)
    resp = await _poll(ctx, f"topic={topic}&cursor=0&max=2&timeout=1")
    seqs = [check_envelope(r)["seq"] for r in split_array(resp.body)] if resp.status == 200 else resp.status
    check(seqs == [1, 2], "max=2 batch", [1, 2], seqs)
    resp = await _poll(ctx, f"topic={topic}&cursor=0&max=999999999&timeout=1")
    check(resp.status == 200 and len(split_array(resp.body)) == 5, "max above the limit is capped",
          "200 with 5 messages", f"{resp.status} {short(resp.body, 60)}")
    expect_error(await _poll(ctx, f"topic={topic}&cursor=0&max=0"), 400, "max=0")


@rule("poll.ahead", "a cursor ahead of the topic is 400 {error, last_seq} (N and E-N)", LP)
async def _ahead(ctx: Ctx) -> None:
    topic = ctx.topic("ahead")
    seq = await ctx.publish_many(topic, 2)
    obj = expect_error(await _poll(ctx, f"topic={topic}&cursor={seq + 5}"), 400, "legacy cursor ahead")
    check(obj.get("last_seq") == seq, "400 last_seq", seq, obj.get("last_seq"))
    epoch = ctx.need_epoch()
    obj = expect_error(await _poll(ctx, f"topic={topic}&cursor={epoch}-{seq + 5}"), 400, "E-N cursor ahead")
    check(obj.get("last_seq") == seq, "400 last_seq", seq, obj.get("last_seq"))


@rule("poll.epoch-header", "200, 204 and 410 poll answers carry Duplexbench-Epoch", LP)
async def _epoch_header(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("eh")
    seq = await ctx.publish(topic)
    for query, status in (("cursor=0", 200), (f"cursor={seq}&timeout=0", 204),
                          (f"cursor={ctx.other_epoch()}-1", 410)):
        resp = await _poll(ctx, f"topic={topic}&{query}")
        check(resp.status == status, f"poll {query} status", status, resp.status)
        check(resp.get("duplexbench-epoch") == epoch, f"Duplexbench-Epoch on the {status}", epoch,
              resp.get("duplexbench-epoch"))


@rule("poll.epoch-cursor", "cursor=E-N (and legacy N) returns the messages after N", LP)
async def _epoch_cursor(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("ec")
    await ctx.publish_many(topic, 3)
    for cursor in (f"{epoch}-1", "1"):
        resp = await _poll(ctx, f"topic={topic}&cursor={cursor}&timeout=1")
        seqs = [check_envelope(r)["seq"] for r in split_array(resp.body)] if resp.status == 200 \
            else f"{resp.status} {short(resp.body)}"
        check(seqs == [2, 3], f"poll cursor={cursor}", [2, 3], seqs)


@rule("poll.reset", "another epoch's cursor: 410 with the reset object; E-K then resumes", LP)
async def _reset(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("reset")
    last = await ctx.publish_many(topic, 3)
    resp = await _poll(ctx, f"topic={topic}&cursor={ctx.other_epoch()}-7")
    check(resp.status == 410, "poll with another epoch's cursor", 410, f"{resp.status} {short(resp.body)}")
    obj = parse_json(resp.body, "410 body")
    k = check_reset(obj, epoch, "poll 410")
    check(isinstance(obj.get("error"), str) and isinstance(obj.get("oldest_seq"), int),
          "reset 410 also has error and oldest_seq", "error, oldest_seq", short(obj))
    check(obj.get("last_seq") == last, "reset last_seq", last, obj.get("last_seq"))
    resp = await _poll(ctx, f"topic={topic}&cursor={obj['cursor']}&timeout=1")
    seqs = [check_envelope(r)["seq"] for r in split_array(resp.body)] if resp.status == 200 else resp.status
    check(seqs == list(range(k + 1, last + 1)), f"poll cursor={obj['cursor']} after the reset",
          list(range(k + 1, last + 1)), seqs)


@rule("poll.retention", "older than retention: 410 {error, epoch, oldest_seq, cursor}; cursor=0 never 410",
      LP, needs="retention", timeout_s=20)
async def _retention(ctx: Ctx) -> None:
    retention = ctx.options.retention
    topic = ctx.topic("ret")
    last = await fill(ctx, topic, retention + 3)
    oldest = last - retention + 1
    for cursor in ("1", f"{ctx.epoch}-1" if ctx.epoch else "1"):
        resp = await _poll(ctx, f"topic={topic}&cursor={cursor}")
        obj = expect_error(resp, 410, f"poll cursor={cursor} older than retention")
        check(obj.get("oldest_seq") == oldest, "410 oldest_seq", oldest, obj.get("oldest_seq"))
        epoch = ctx.need_epoch()
        check(obj.get("epoch") == epoch and obj.get("cursor") == f"{epoch}-{oldest - 1}",
              "410 epoch and cursor", f"{epoch}, {epoch}-{oldest - 1}", (obj.get("epoch"), obj.get("cursor")))
    for cursor in ("0", f"{ctx.epoch}-0"):
        resp = await _poll(ctx, f"topic={topic}&cursor={cursor}&max={retention}&timeout=1")
        first = check_envelope(split_array(resp.body)[0])["seq"] if resp.status == 200 else None
        check(first == oldest, f"cursor={cursor}: from the oldest retained", f"200 starting at {oldest}",
              f"{resp.status} {first if first else short(resp.body)}")
