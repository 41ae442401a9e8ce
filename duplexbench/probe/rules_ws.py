"""WebSocket rules (RFC 6455 plus the contract): handshake and its refusals, one
unfragmented text frame per envelope, publish frames, Ping/Pong, Close echo,
close codes for bad frames, cursors, reset and retention."""

from __future__ import annotations

import asyncio
import json

from ..contract.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    accept_key,
)
from .core import Ctx, check, expect_error, parse_json, rule, short, soon
from .envelopes import check_envelope, check_reset, fill
from .wire import WSConn, ws_key

__all__: list[str] = []

WS = "websocket"
BIG_TS = 2**62 + 777


async def _texts(ws: WSConn, count: int, what: str) -> list[bytes]:
    """The next ``count`` text frames (each must be final and unmasked)."""
    out = []
    while len(out) < count:
        opcode, fin, payload, masked = await ws.recv()
        if opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            check(False, what, f"{count} text frames", f"Close {code} {payload[2:]!r} after {len(out)}")
        if opcode in (OP_PING, OP_PONG):
            continue
        check(opcode == OP_TEXT and fin and not masked, f"{what}: one unmasked, unfragmented text frame",
              "text, FIN, unmasked", f"opcode {opcode}, fin {fin}, masked {masked}")
        out.append(payload)
    return out


@rule("ws.handshake", "101 with the right Sec-WebSocket-Accept; no extension, no subprotocol", WS)
async def _handshake(ctx: Ctx) -> None:
    key = ws_key()
    headers = ctx.ws_headers(key, Sec_WebSocket_Extensions="permessage-deflate; client_max_window_bits",
                             Sec_WebSocket_Protocol="chat")
    head, _, _ = await ctx.ws(f"topic={ctx.topic('hs')}", headers)
    check(head.status == 101, "upgrade status", 101, head.status)
    check((head.get("upgrade") or "").lower() == "websocket", "Upgrade header", "websocket", head.get("upgrade"))
    check(head.get("sec-websocket-accept") == accept_key(key), "Sec-WebSocket-Accept", accept_key(key),
          head.get("sec-websocket-accept"))
    check(head.get("sec-websocket-extensions") is None, "no permessage-deflate (same bytes everywhere)",
          "no Sec-WebSocket-Extensions", head.get("sec-websocket-extensions"))
    check(head.get("sec-websocket-protocol") is None, "no subprotocol", "none", head.get("sec-websocket-protocol"))


@rule("ws.epoch-header", "the 101 carries Duplexbench-Epoch", WS)
async def _epoch_header(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    head, _, _ = await ctx.ws(f"topic={ctx.topic('weh')}")
    check(head.get("duplexbench-epoch") == epoch, "Duplexbench-Epoch on the 101", epoch,
          head.get("duplexbench-epoch"))


@rule("ws.refusals", "before upgrading: no Upgrade 400, bad/missing key 400, version 8 426 (+13)", WS)
async def _refusals(ctx: Ctx) -> None:
    topic = ctx.topic("ref")
    expect_error(await ctx.request("GET", f"/ws?topic={topic}"), 400, "GET /ws without Upgrade")
    for key in (None, "abc", "AAAA", ""):
        headers = ctx.ws_headers()
        if key is None:
            del headers["Sec-WebSocket-Key"]
        else:
            headers["Sec-WebSocket-Key"] = key
        obj = expect_error(await ctx.request("GET", f"/ws?topic={topic}", headers), 400,
                           f"Sec-WebSocket-Key {'missing' if key is None else repr(key)}")
        check("Sec-WebSocket-Key" in obj["error"], "the 400 names the key",
              "missing or invalid Sec-WebSocket-Key", obj["error"])
    headers = ctx.ws_headers(Sec_WebSocket_Version="8")
    resp = await ctx.request("GET", f"/ws?topic={topic}", headers)
    expect_error(resp, 426, "Sec-WebSocket-Version: 8")
    check(resp.get("sec-websocket-version") == "13", "426 Sec-WebSocket-Version", "13",
          resp.get("sec-websocket-version"))


@rule("ws.deliver", "each published message is one text frame with the envelope bytes", WS)
async def _deliver(ctx: Ctx) -> None:
    topic = ctx.topic("wd")
    ws = await ctx.ws_open(f"topic={topic}")
    for i in range(2):
        await ctx.publish(topic, f"w{i}")
    seqs = [check_envelope(p, topic=topic)["seq"] for p in await _texts(ws, 2, "deliveries")]
    check(seqs == [1, 2], "delivered seqs", [1, 2], seqs)


@rule("ws.publish", 'a {"data","ts"} frame publishes; ts is an integer or a digit string (> 2^53 exact)', WS)
async def _publish(ctx: Ctx) -> None:
    topic = ctx.topic("wp")
    ws = await ctx.ws_open(f"topic={topic}")
    frames = [json.dumps({"data": "a", "ts": BIG_TS}), json.dumps({"data": "b", "ts": str(BIG_TS + 1)}),
              json.dumps({"data": "c"})]
    for frame in frames:
        ws.send(OP_TEXT, frame.encode())
    got = [check_envelope(p, topic=topic) for p in await _texts(ws, 3, "publish frames echoed")]
    check([g["data"] for g in got] == ["a", "b", "c"], "published data in order", ["a", "b", "c"],
          [g["data"] for g in got])
    check(got[0]["ts"] == BIG_TS and got[1]["ts"] == BIG_TS + 1, "envelope ts (integer, exact)",
          [BIG_TS, BIG_TS + 1], [got[0]["ts"], got[1]["ts"]])


@rule("ws.subscribe0", "subscribe=0: a publish-only socket receives nothing", WS)
async def _subscribe0(ctx: Ctx) -> None:
    topic = ctx.topic("s0")
    pub = await ctx.ws_open(f"topic={topic}&subscribe=0")
    sub = await ctx.ws_open(f"topic={topic}")
    pub.send(OP_TEXT, b'{"data":"only-sub"}')
    check_envelope((await _texts(sub, 1, "the subscriber's delivery"))[0], data="only-sub")
    pub.send(OP_PING, b"after")
    opcode, _, payload, _ = await pub.recv()
    check(opcode == OP_PONG and payload == b"after", "subscribe=0 socket's next frame is the Pong",
          "Pong b'after'", f"opcode {opcode} {short(payload)}")


@rule("ws.ping", "Ping is answered by a Pong with the same payload", WS)
async def _ping(ctx: Ctx) -> None:
    ws = await ctx.ws_open(f"topic={ctx.topic('png')}")
    ws.send(OP_PING, b"probe-ping")
    while True:
        opcode, _, payload, _ = await ws.recv()
        if opcode != OP_PING:
            break
    check(opcode == OP_PONG and payload == b"probe-ping", "answer to Ping", "Pong b'probe-ping'",
          f"opcode {opcode} {short(payload)}")


@rule("ws.close-echo", "Close is answered by Close with the same code (1000 if none), then TCP closes", WS)
async def _close(ctx: Ctx) -> None:
    for code in (1000, 4001, None):
        ws = await ctx.ws_open(f"topic={ctx.topic('cl')}")
        ws.send(OP_CLOSE, b"" if code is None else code.to_bytes(2, "big") + b"bye")
        got, _ = await ws.recv_close()
        want = code or 1000
        check(got == want, f"Close code echoed for a client Close {code}", want, got)
        check(await ws.conn.closed_by_peer(2.0), "the server closes TCP after the Close handshake",
              "EOF within 2 s", "still open")


BAD_FRAMES = [
    (OP_TEXT, b"not json", 1008), (OP_BINARY, b'{"data":"x"}', 1008), (OP_TEXT, b"\xff\xfe", 1007),
    (OP_TEXT, b'{"data":5}', 1008), (OP_TEXT, b'{"ts":1}', 1008), (OP_TEXT, b'{"data":"x","ts":-1}', 1008),
    (OP_TEXT, b'{"data":"x","ts":1.5}', 1008), (OP_TEXT, b'{"data":"x","ts":"12a"}', 1008),
    (OP_TEXT, b'{"data":"x","ts":""}', 1008), (OP_TEXT, b'{"data":"x","ts":true}', 1008),
    (OP_TEXT, b'{"data":"x","ts":%d}' % 2**63, 1008), (OP_TEXT, b'["x"]', 1008),
]


@rule("ws.bad-frames", "a frame that is not a publish closes 1008 (invalid UTF-8: 1007)", WS)
async def _bad_frames(ctx: Ctx) -> None:
    async def one(opcode: int, payload: bytes, want: int) -> None:
        ws = await ctx.ws_open(f"topic={ctx.topic('bf')}&subscribe=0")
        ws.send(opcode, payload)
        try:
            got, _ = await asyncio.wait_for(ws.recv_close(), 2.0)
        except (TimeoutError, asyncio.TimeoutError):
            got = "no Close within 2 s (accepted as a publish?)"
        return None if got == want else f"{payload[:30]!r} -> {got}"
    wrong = [w for w in await asyncio.gather(*[one(*case) for case in BAD_FRAMES]) if w]
    want = "; ".join(f"{p[:30]!r} -> {c}" for _, p, c in BAD_FRAMES)
    check(not wrong, "Close codes for bad frames", want, "; ".join(wrong))


@rule("ws.too-big", "a publish whose data exceeds --max-payload closes 1009", WS, timeout_s=10)
async def _too_big(ctx: Ctx) -> None:
    ws = await ctx.ws_open(f"topic={ctx.topic('big')}&subscribe=0")
    ws.send(OP_TEXT, json.dumps({"data": "x" * (ctx.options.max_payload + 1)}).encode())
    got, _ = await ws.recv_close()
    check(got == 1009, f"Close code for {ctx.options.max_payload + 1} bytes of data", 1009, got)


@rule("ws.cursor", "cursor=E-N or N: frames after N; ahead: 400 {error, last_seq} before upgrading", WS)
async def _cursor(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("wc")
    last = await ctx.publish_many(topic, 3)
    for cursor in (f"{epoch}-1", "1"):
        ws = await ctx.ws_open(f"topic={topic}&cursor={cursor}")
        seqs = [check_envelope(p)["seq"] for p in await soon(_texts(ws, 2, f"cursor={cursor}"),
                                                              f"frames after cursor={cursor}")]
        check(seqs == [2, 3], f"frames after cursor={cursor}", [2, 3], seqs)
    for cursor in (str(last + 2), f"{epoch}-{last + 2}"):
        obj = expect_error(await ctx.request("GET", f"/ws?topic={topic}&cursor={cursor}", ctx.ws_headers()),
                           400, f"/ws cursor={cursor} ahead")
        check(obj.get("last_seq") == last, "400 last_seq", last, obj.get("last_seq"))


@rule("ws.reset", "another epoch's cursor: 101, the first text frame is the reset object", WS)
async def _reset(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    topic = ctx.topic("wr")
    last = await ctx.publish_many(topic, 2)
    head, ws, conn = await ctx.ws(f"topic={topic}&cursor={ctx.other_epoch()}-9")
    check(ws is not None, "upgrade with another epoch's cursor", 101, head.status)
    opcode, _, payload, _ = await soon(ws.recv(), "the reset frame")
    check(opcode == OP_TEXT, "first frame", "text", opcode)
    k = check_reset(parse_json(payload, "first frame"), epoch, "WebSocket reset")
    seqs = [check_envelope(p)["seq"]
            for p in await soon(_texts(ws, last - k, "messages after the reset"), "frames after the reset")]
    check(seqs == list(range(k + 1, last + 1)), "messages after the reset", list(range(k + 1, last + 1)), seqs)


@rule("ws.retention", "older than retention: 410 before upgrading; cursor=0 never 410",
      WS, needs="retention", timeout_s=20)
async def _retention(ctx: Ctx) -> None:
    retention = ctx.options.retention
    topic = ctx.topic("wret")
    last = await fill(ctx, topic, retention + 3)
    oldest = last - retention + 1
    obj = expect_error(await ctx.request("GET", f"/ws?topic={topic}&cursor=1", ctx.ws_headers()), 410,
                       "/ws cursor older than retention")
    check(obj.get("oldest_seq") == oldest, "410 oldest_seq", oldest, obj.get("oldest_seq"))
    ws = await ctx.ws_open(f"topic={topic}&cursor=0")
    first = check_envelope((await soon(_texts(ws, 1, "cursor=0"), "cursor=0 frames"))[0])["seq"]
    check(first == oldest, "cursor=0 starts at the oldest retained", oldest, first)
