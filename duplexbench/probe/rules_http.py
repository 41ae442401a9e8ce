"""Rules for the always-mounted endpoints: /healthz, /metrics, /publish, the envelope,
unknown paths and bad input (4xx with a JSON reason, never 5xx)."""

from __future__ import annotations

from .core import (
    EPOCH_RE,
    Ctx,
    Fail,
    Skip,
    check,
    expect_error,
    parse_json,
    rule,
    short,
)
from .envelopes import check_envelope, read_envelopes, read_ndjson, read_ws, split_array

__all__: list[str] = []

BIG_TS = 2**62 + 12345  # > 2^53: a double would round it


@rule("health.ok", "GET /healthz: 200 JSON {status: ok, transports: [...]} ")
async def _health(ctx: Ctx) -> None:
    resp = await ctx.request("GET", "/healthz")
    check(resp.status == 200, "GET /healthz status", 200, resp.status)
    obj = parse_json(resp.body, "/healthz body")
    check(isinstance(obj, dict) and obj.get("status") == "ok" and isinstance(obj.get("transports"), list),
          "/healthz body", '{"status":"ok","transports":[...]}', short(resp.body))


@rule("health.epoch", "GET /healthz carries the server's epoch [a-z0-9]{1,16}")
async def _health_epoch(ctx: Ctx) -> None:
    obj = parse_json((await ctx.request("GET", "/healthz")).body, "/healthz body")
    epoch = obj.get("epoch") if isinstance(obj, dict) else None
    check(isinstance(epoch, str) and bool(EPOCH_RE.fullmatch(epoch)), "/healthz epoch",
          '"epoch": "[a-z0-9]{1,16}"', epoch)


@rule("metrics.text", "GET /metrics: Prometheus text with duplexbench_* series")
async def _metrics(ctx: Ctx) -> None:
    resp = await ctx.request("GET", "/metrics")
    check(resp.status == 200, "GET /metrics status", 200, resp.status)
    check((resp.get("content-type") or "").startswith("text/plain"), "/metrics Content-Type",
          "text/plain", resp.get("content-type"))
    check(b"duplexbench_messages_published_total" in resp.body, "/metrics series",
          "duplexbench_messages_published_total", short(resp.body))


@rule("http.404", "an unknown path is 404 with a JSON error")
async def _not_found(ctx: Ctx) -> None:
    expect_error(await ctx.request("GET", "/no-such-path-probe"), 404, "GET /no-such-path-probe")


@rule("http.405", "a wrong method is 405 with Allow (GET /publish)")
async def _bad_method(ctx: Ctx) -> None:
    resp = await ctx.request("GET", "/publish?topic=probe")
    expect_error(resp, 405, "GET /publish")
    check("POST" in (resp.get("allow") or ""), "405 Allow header", "POST", resp.get("allow"))


@rule("http.malformed", "a malformed request line is 400 (never 5xx)")
async def _malformed(ctx: Ctx) -> None:
    conn = await ctx.connect()
    conn.send_raw(b"GARBAGE\x01 /\x00 HTTP/9.9\r\n\r\n")
    head = await conn.head()
    check(head.status == 400, "answer to a malformed request line", 400, head.status)


@rule("publish.seq", "POST /publish: 200 {\"seq\":N}, N = 1, 2, ... per topic, no gaps")
async def _publish_seq(ctx: Ctx) -> None:
    topic = ctx.topic("seq")
    seqs = [await ctx.publish(topic, f"p{i}") for i in range(3)]
    check(seqs == [1, 2, 3], "seqs of three publishes to a new topic", [1, 2, 3], seqs)


@rule("publish.ts", "publish ?ts= (decimal ns, > 2^53) reaches the envelope exactly")
async def _publish_ts(ctx: Ctx) -> None:
    topic = ctx.topic("ts")
    seq = await ctx.publish(topic, "t", ts=BIG_TS)
    _, raws = await read_envelopes(ctx, topic, seq - 1, 1)
    check_envelope(raws[0], seq=seq, topic=topic, ts=BIG_TS, data="t")


@rule("publish.bad-topic", "missing, over-long or bad-character topic: 400")
async def _publish_bad_topic(ctx: Ctx) -> None:
    for query in ("", "?topic=", "?topic=" + "a" * 65, "?topic=a%20b", "?topic=%C3%A9"):
        expect_error(await ctx.request("POST", "/publish" + query, body=b"x"), 400, f"POST /publish{query[:30]}")


@rule("publish.bad-ts", "bad ts (negative, fraction, text, >= 2^63): 400")
async def _publish_bad_ts(ctx: Ctx) -> None:
    topic = ctx.topic("badts")
    for ts in ("-1", "1.5", "abc", "1e9", str(2**63), "+5"):
        expect_error(await ctx.request("POST", f"/publish?topic={topic}&ts={ts}", body=b"x"), 400,
                     f"POST /publish ts={ts}")


@rule("publish.utf8", "a body that is not UTF-8 is 400")
async def _publish_utf8(ctx: Ctx) -> None:
    expect_error(await ctx.request("POST", f"/publish?topic={ctx.topic('u8')}", body=b"\xff\xfe\x80"),
                 400, "POST /publish with a non-UTF-8 body")


@rule("publish.too-large", "a body over --max-payload is 413", timeout_s=10)
async def _publish_large(ctx: Ctx) -> None:
    body = b"x" * (ctx.options.max_payload + 1)
    expect_error(await ctx.request("POST", f"/publish?topic={ctx.topic('big')}", body=body), 413,
                 f"POST /publish of {len(body)} bytes")


@rule("envelope.bytes", 'envelope is {"seq","topic","ts","data"} compact, keys in order, UTF-8 unescaped')
async def _envelope(ctx: Ctx) -> None:
    topic = ctx.topic("env")
    data = 'héllo "q" \\ ✓ </script>'
    seq = await ctx.publish(topic, data, ts=1234567890123456789)
    _, raws = await read_envelopes(ctx, topic, seq - 1, 1)
    check_envelope(raws[0], seq=seq, topic=topic, ts=1234567890123456789, data=data)


@rule("envelope.same-bytes", "the same message is the same bytes on every mounted transport")
async def _same_bytes(ctx: Ctx) -> None:
    if len(ctx.mounted) < 2:
        raise Skip("fewer than two subscriber transports mounted")
    topic = ctx.topic("same")
    seq = await ctx.publish(topic, "same ✓", ts=42)
    seen = {}
    if "longpoll" in ctx.mounted:
        resp = await ctx.request("GET", f"/poll?topic={topic}&cursor={seq - 1}&timeout=2")
        check(resp.status == 200, "poll status", 200, resp.status)
        seen["longpoll"] = split_array(resp.body)[0]
    if "stream" in ctx.mounted:
        seen["ndjson"] = (await read_ndjson(ctx, topic, seq - 1, 1))[0]
    if "websocket" in ctx.mounted:
        seen["websocket"] = (await read_ws(ctx, topic, seq - 1, 1))[0]
    check(len(set(seen.values())) == 1, "identical envelope bytes", "one value", short(seen, 400))


#: Bad queries that must get a 4xx on every subscriber path (and on /publish).
BAD_QUERIES = [
    "topic=", "topic=" + "a" * 65, "topic=%00", "topic=%FF", "topic=a/b",
    "topic=t&cursor=abc", "topic=t&cursor=-1", "topic=t&cursor=1e3", "topic=t&cursor=%20",
    "topic=t&cursor=99999999999999999999999", "topic=t&cursor=E-", "topic=t&cursor=-5",
    "topic=t&cursor=ABCDEFGH-1", "topic=t&cursor=aaaaaaaaaaaaaaaaa-1", "topic=t&cursor=ab-cd-1",
    "topic=t&cursor=ab-", "topic=t&cursor=%C3%A9-1",
]
POLL_ONLY = ["topic=t&timeout=-1", "topic=t&timeout=nan", "topic=t&timeout=inf",
             "topic=t&timeout=abc", "topic=t&max=-1", "topic=t&max=abc", "topic=t&max=0"]


@rule("input.no-5xx", "bad input on every path is a 4xx with a JSON reason, never 5xx")
async def _bad_input(ctx: Ctx) -> None:
    cases: list[tuple[str, str, dict | None]] = []
    if "longpoll" in ctx.mounted:
        cases += [("GET", "/poll?" + q, None) for q in BAD_QUERIES + POLL_ONLY]
    if "stream" in ctx.mounted:
        cases += [("GET", "/stream?" + q, {"Accept": a}) for q in BAD_QUERIES
                  for a in ("text/event-stream", "application/x-ndjson")]
        cases.append(("GET", "/stream?topic=t", {"Accept": "text/event-stream", "Last-Event-ID": "x1"}))
    if "websocket" in ctx.mounted:
        cases += [("GET", "/ws?" + q, ctx.ws_headers()) for q in BAD_QUERIES]
        cases.append(("GET", "/ws?topic=t&subscribe=2", ctx.ws_headers()))
    cases += [("POST", "/publish?" + q, None) for q in BAD_QUERIES[:5]]
    bad = []
    for method, path, headers in cases:
        resp = await ctx.request(method, path, headers, b"x" if method == "POST" else b"")
        try:
            expect_error(resp, tuple(range(400, 500)), f"{method} {path}")
        except Fail as exc:
            bad.append(f"{method} {path[:60]} -> {resp.status} {short(exc.got, 60)}")
    if bad:
        raise Fail("every bad request is a 4xx with a JSON reason", "4xx {\"error\": ...}",
                   "; ".join(bad[:4]) + (f" (+{len(bad) - 4} more)" if len(bad) > 4 else ""))
