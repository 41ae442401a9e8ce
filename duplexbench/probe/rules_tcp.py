"""Plain-TCP rules (duplexbench/contract/tcp.py): the hello line, one envelope + newline per
message, publish lines and publish-only connections, cursors, the reset, retention, error
lines with the HTTP-equivalent status for bad input, heartbeats.

The listener is the one ``/healthz`` names (``tcp_port``); a server without it skips these."""

from __future__ import annotations

import asyncio
import json

from duplexbench.contract.tcp import LINE_OVERHEAD, encode_hello, encode_subscribe

from .core import Ctx, Fail, check, parse_json, rule, short, soon
from .envelopes import check_envelope, check_reset, fill
from .wire import TcpConn

__all__: list[str] = []

TCP = "tcp"
BIG_TS = 2**62 + 4242  # > 2^53: a double would round it
#: After an error line the server closes within this (its lingering close is 1 s).
CLOSE_WITHIN_S = 3.0


async def _open(ctx: Ctx, topic: str, cursor: str | None = None, subscribe: bool = True) -> TcpConn:
    return await ctx.tcp(encode_subscribe(topic, cursor, subscribe))


async def _first(conn: TcpConn, what: str) -> bytes:
    return await soon(conn.tcp_line(), f"{what}: the server's first line")


async def _messages(conn: TcpConn, count: int, what: str) -> list[bytes]:
    """The next ``count`` non-blank lines, each without its newline (checked: exactly one)."""
    out: list[bytes] = []
    while len(out) < count:
        line = await soon(conn.tcp_line(), f"{what}: line {len(out) + 1} of {count}")
        if line == b"\n":
            continue  # a heartbeat
        check(not line.endswith(b"\r\n"), f"{what}: lines end with \\n alone", "...}\\n", short(line[-20:]))
        out.append(line[:-1])
    return out


async def _error_then_close(conn: TcpConn, status: int, what: str) -> dict:
    """Everything until the server closes: its last line is an error line with ``status``."""
    data, closed = await conn.until_closed(CLOSE_WITHIN_S)
    lines = [line for line in data.split(b"\n") if line.strip()]
    check(bool(lines), f"{what}: an error line", f'{{"error":"...","status":{status}}}', "nothing")
    obj = parse_json(lines[-1], f"{what}: the last line")
    check(isinstance(obj, dict) and isinstance(obj.get("error"), str) and obj.get("status") == status,
          f"{what}: error line with the HTTP-equivalent status", f'{{"error":"...","status":{status}}}',
          short(lines[-1]))
    check(data.endswith(b"\n"), f"{what}: the error line is complete", "...}\\n", short(data[-40:]))
    check(closed, f"{what}: the server closes after the error line", f"EOF within {CLOSE_WITHIN_S:g} s",
          "still open")
    return obj


@rule("tcp.hello", 'the subscribe line is answered by {"event":"hello","epoch":E,"cursor":"E-N"}; '
      "publish-only: no cursor", TCP)
async def _hello(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("th")
    last = await ctx.publish_many(topic, 2)
    line = await _first(await _open(ctx, topic), "subscribe from now on")
    check(line == encode_hello(epoch, last), "hello line (from now on: the topic's last seq)",
          encode_hello(epoch, last), line)
    line = await _first(await _open(ctx, topic, subscribe=False), '"subscribe":false')
    check(line == encode_hello(epoch), "publish-only hello line", encode_hello(epoch), line)


@rule("tcp.lines", "each published message is exactly its envelope bytes + \\n, nothing else", TCP)
async def _lines(ctx: Ctx) -> None:
    topic = ctx.topic("tl")
    conn = await _open(ctx, topic)
    await _first(conn, "subscribe")
    for i in range(2):
        await ctx.publish(topic, f"l{i} é\n\"", ts=BIG_TS + i)
    for i, raw in enumerate(await _messages(conn, 2, "deliveries")):
        check_envelope(raw, seq=i + 1, topic=topic, ts=BIG_TS + i, data=f"l{i} é\n\"")


@rule("tcp.publish", 'a {"data","ts"} line publishes (ts integer or digit string, exact); '
      '"subscribe":false receives nothing', TCP)
async def _publish(ctx: Ctx) -> None:
    topic = ctx.topic("tp")
    sub = await _open(ctx, topic)
    await _first(sub, "subscriber")
    pub = await _open(ctx, topic, subscribe=False)
    await _first(pub, "publish-only connection")
    pub.send_raw(b'{"data":"a","ts":%d}\n{"data":"b","ts":"%d"}\n\n{"data":"c"}\n' % (BIG_TS, BIG_TS + 1))
    got = [check_envelope(raw, topic=topic) for raw in await _messages(sub, 3, "publish lines")]
    check([g["data"] for g in got] == ["a", "b", "c"], "published data in order", ["a", "b", "c"],
          [g["data"] for g in got])
    check(got[0]["ts"] == BIG_TS and got[1]["ts"] == BIG_TS + 1, "envelope ts (integer, exact)",
          [BIG_TS, BIG_TS + 1], [got[0]["ts"], got[1]["ts"]])
    sub.send_raw(b'{"data":"d"}\n')  # a subscriber's own connection publishes too
    check_envelope((await _messages(sub, 1, "the subscriber's own publish"))[0], seq=4, data="d")
    try:
        line = await asyncio.wait_for(pub.tcp_line(), 0.3)
    except (TimeoutError, asyncio.TimeoutError):
        return
    raise Fail('"subscribe":false: nothing after the hello line', "nothing", short(line))


@rule("tcp.cursor", 'cursor "E-N" or "N": hello cursor E-N, then exactly the messages after N', TCP)
async def _cursor(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("tc")
    await ctx.publish_many(topic, 3)
    for cursor in (f"{epoch}-1", "1"):
        conn = await _open(ctx, topic, cursor)
        line = await _first(conn, f"cursor {cursor}")
        check(line == encode_hello(epoch, 1), f"hello line for cursor {cursor}", encode_hello(epoch, 1), line)
        seqs = [check_envelope(raw)["seq"] for raw in await _messages(conn, 2, f"after cursor {cursor}")]
        check(seqs == [2, 3], f"messages after cursor {cursor}", [2, 3], seqs)
    live = await ctx.publish(topic, "live")
    seq = check_envelope((await _messages(conn, 1, "the next live message"))[0])["seq"]
    check(seq == live, "then live messages, none twice", live, seq)


@rule("tcp.ahead", 'a cursor ahead of the topic: error line {"error","status":400,"last_seq"}, then close', TCP)
async def _ahead(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("ta")
    last = await ctx.publish_many(topic, 2)
    for cursor in (str(last + 2), f"{epoch}-{last + 2}"):
        obj = await _error_then_close(await _open(ctx, topic, cursor), 400, f"cursor {cursor} ahead")
        check(obj.get("last_seq") == last, "error line last_seq", last, obj.get("last_seq"))


@rule("tcp.reset", "another epoch's cursor: the first line is the reset object, then what is retained", TCP)
async def _reset(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("tr")
    last = await ctx.publish_many(topic, 2)
    conn = await _open(ctx, topic, f"{ctx.other_epoch()}-9")
    k = check_reset(parse_json(await _first(conn, "another epoch's cursor"), "first line"), epoch, "TCP reset")
    seqs = [check_envelope(raw)["seq"] for raw in await _messages(conn, last - k, "after the reset")]
    check(seqs == list(range(k + 1, last + 1)), "messages after the reset", list(range(k + 1, last + 1)), seqs)


@rule("tcp.retention", 'older than retention: error line 410 {"oldest_seq","cursor"}; cursor "0" never 410',
      TCP, needs="retention", timeout_s=20)
async def _retention(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    retention = ctx.options.retention
    topic = ctx.topic("tret")
    last = await fill(ctx, topic, retention + 3)
    oldest = last - retention + 1
    obj = await _error_then_close(await _open(ctx, topic, f"{epoch}-1"), 410, "cursor older than retention")
    check(obj.get("oldest_seq") == oldest and obj.get("cursor") == f"{epoch}-{oldest - 1}"
          and obj.get("epoch") == epoch, "410 error line oldest_seq, cursor, epoch",
          f"{oldest}, {epoch}-{oldest - 1}, {epoch}", (obj.get("oldest_seq"), obj.get("cursor"), obj.get("epoch")))
    conn = await _open(ctx, topic, "0")
    line = await _first(conn, "cursor 0")
    check(line == encode_hello(epoch, oldest - 1), "cursor 0: hello at the oldest retained - 1",
          encode_hello(epoch, oldest - 1), line)
    first = check_envelope((await _messages(conn, 1, "cursor 0"))[0])["seq"]
    check(first == oldest, "cursor 0 starts at the oldest retained", oldest, first)


BAD_LINES = [
    b"SUB topic=t\n", b"[1]\n", b"{}\n", b'{"topic":"bad topic"}\n', b'{"topic":5}\n', b"\xff\xfe\n",
    b'{"topic":"t","cursor":"E-1"}\n', b'{"topic":"t","cursor":7}\n', b'{"topic":"t","subscribe":"no"}\n',
    b'{"topic":"t"}\nnot json\n', b'{"topic":"t"}\n{"data":5}\n', b'{"topic":"t"}\n{"ts":1}\n',
    b'{"topic":"t"}\n{"data":"x","ts":-1}\n', b'{"topic":"t"}\n{"data":"x","ts":1.5}\n',
    b'{"topic":"t"}\n{"data":"x","ts":"12a"}\n', b'{"topic":"t"}\n{"data":"\\ud800"}\n',
]


@rule("tcp.bad-input", 'a bad subscribe or publish line: one error line {"error","status":400}, then close',
      TCP, timeout_s=10)
async def _bad_input(ctx: Ctx) -> None:
    async def one(send: bytes) -> str | None:
        conn = await ctx.tcp(send.replace(b'"topic":"t"', b'"topic":"%s"' % ctx.topic("bad").encode()))
        try:
            await _error_then_close(conn, 400, short(send))
        except Fail as exc:
            return f"{send[:40]!r}: {exc.what}: {short(exc.got, 80)}"
        return None
    wrong = [w for w in await asyncio.gather(*[one(line) for line in BAD_LINES]) if w]
    check(not wrong, "error line 400 then close for each bad line", "all refused", "; ".join(wrong))


@rule("tcp.too-long", "a line over --max-payload + 256 bytes (or data over --max-payload): error 413, close",
      TCP, timeout_s=10)
async def _too_long(ctx: Ctx) -> None:
    limit = ctx.options.max_payload
    conn = await ctx.tcp(b"x" * (limit + LINE_OVERHEAD + 1))  # no newline: refused before it ends
    await _error_then_close(conn, 413, f"a line of {limit + LINE_OVERHEAD + 1} bytes")
    conn = await _open(ctx, ctx.topic("big"), subscribe=False)
    await _first(conn, "publish-only connection")
    conn.send_raw(json.dumps({"data": "x" * (limit + 1)}).encode() + b"\n")
    await _error_then_close(conn, 413, f"data of {limit + 1} bytes")


@rule("tcp.heartbeat", "a blank line after --heartbeat s of silence, and not before", TCP,
      needs="heartbeat_s", timeout_s=60)
async def _heartbeat(ctx: Ctx) -> None:
    hb = ctx.options.heartbeat_s
    conn = await _open(ctx, ctx.topic("thb"))
    await _first(conn, "subscribe")
    loop = asyncio.get_running_loop()
    started = loop.time()
    line = await soon(conn.tcp_line(), "a heartbeat", hb + 1.5)
    waited = loop.time() - started
    check(line == b"\n", "heartbeat: a blank line", b"\n", line)
    check(waited >= 0.5 * hb, "no heartbeat before --heartbeat s of silence", f">= {hb:g} s", f"{waited:.2f} s")
