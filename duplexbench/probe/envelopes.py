"""Reading envelopes back, byte for byte, over whichever subscriber transport is mounted.

Rules about the envelope (key order, compact JSON, exact ``ts``) need the raw
bytes a server sent, not a parsed object; these helpers split poll batches,
NDJSON lines, SSE events and WebSocket frames back into single envelopes.
"""

from __future__ import annotations

import asyncio
import json

from ..contract import encode_envelope
from ..contract.websocket import OP_TEXT
from .core import Ctx, Fail, check, parse_json, short

__all__ = ["check_envelope", "check_reset", "fill", "read_envelopes", "split_array"]

KEYS = ["seq", "topic", "ts", "data"]


def split_array(body: bytes) -> list[bytes]:
    """The raw bytes of each element of a JSON array (a poll batch)."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    i = text.index("[") + 1
    items = []
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            return items
        _, end = decoder.raw_decode(text, i)
        items.append(text[i:end].encode())
        i = end


def check_envelope(raw: bytes, seq: int | None = None, topic: str | None = None,
                   ts: int | None = None, data: str | None = None) -> dict:
    """One envelope: keys seq, topic, ts, data in that order, compact, UTF-8 unescaped."""
    parse_json(raw, "envelope")
    pairs = json.loads(raw, object_pairs_hook=list)
    check(isinstance(pairs, list) and [k for k, _ in pairs][:4] == KEYS,
          "envelope keys in order seq, topic, ts, data", KEYS, short(raw))
    obj = dict(pairs)
    check(isinstance(obj["seq"], int) and isinstance(obj["ts"], int) and not isinstance(obj["ts"], bool)
          and isinstance(obj["topic"], str) and isinstance(obj["data"], str),
          "envelope seq/ts integers, topic/data strings", "ints and strings", short(raw))
    check(0 <= obj["ts"] < 2**63, "envelope ts is 0 <= ts < 2^63 (ns)", "0 <= ts < 2^63", obj["ts"])
    if len(pairs) == 4:
        exact = encode_envelope(obj["seq"], obj["topic"], obj["ts"], obj["data"])
        check(raw == exact, "envelope is compact JSON, UTF-8 not \\u-escaped", exact, raw)
    for name, want in (("seq", seq), ("topic", topic), ("ts", ts), ("data", data)):
        if want is not None:
            check(obj[name] == want, f"envelope {name}", want, obj[name])
    return obj


def check_reset(obj: object, epoch: str, what: str) -> int:
    """A reset object for this server's epoch; returns K of its cursor ``E-K``."""
    check(isinstance(obj, dict) and obj.get("event") == "reset", f"{what}: a reset object",
          '{"event":"reset","epoch":E,"cursor":"E-K","last_seq":L}', short(obj))
    check(obj.get("epoch") == epoch, f"{what}: reset epoch is the server's", epoch, obj.get("epoch"))
    cursor = obj.get("cursor")
    head, _, k = cursor.rpartition("-") if isinstance(cursor, str) else ("", "", "")
    check(head == epoch and k.isdigit(), f"{what}: reset cursor is E-K", f"{epoch}-K", cursor)
    check(isinstance(obj.get("last_seq"), int) and obj["last_seq"] >= int(k),
          f"{what}: reset last_seq is an integer >= K", f">= {k}", obj.get("last_seq"))
    return int(k)


async def read_envelopes(ctx: Ctx, topic: str, after: int, count: int) -> tuple[str, list[bytes]]:
    """``count`` raw envelopes after seq ``after``, over the first mounted transport."""
    if "longpoll" in ctx.mounted:
        resp = await ctx.request("GET", f"/poll?topic={topic}&cursor={after}&timeout=2&max={count}")
        check(resp.status == 200, "poll with retained messages answers 200", 200,
              f"{resp.status} {short(resp.body)}")
        return "longpoll", split_array(resp.body)
    if "stream" in ctx.mounted:
        return "ndjson", await read_ndjson(ctx, topic, after, count)
    if "websocket" in ctx.mounted:
        return "websocket", await read_ws(ctx, topic, after, count)
    raise Fail("a subscriber transport is mounted", "/poll, /stream or /ws", "none")


async def read_ndjson(ctx: Ctx, topic: str, after: int, count: int) -> list[bytes]:
    conn, head, body = await ctx.open(f"/stream?topic={topic}&cursor={after}",
                                      {"Accept": "application/x-ndjson"})
    check(head.status == 200, "NDJSON stream answers 200", 200, head.status)
    lines: list[bytes] = []
    while len(lines) < count:
        line = (await body.take(b"\n"))[:-1]
        if line.strip():
            lines.append(line)
    conn.close()
    return lines


async def read_ws(ctx: Ctx, topic: str, after: int, count: int) -> list[bytes]:
    ws = await ctx.ws_open(f"topic={topic}&cursor={after}")
    frames = []
    while len(frames) < count:
        opcode, fin, payload, _ = await ws.recv()
        if opcode == OP_TEXT:
            frames.append(payload)
    return frames


async def fill(ctx: Ctx, topic: str, count: int) -> int:
    """Publish ``count`` messages, several at a time (retention may be large)."""
    last = 0
    for start in range(0, count, 20):
        seqs = await asyncio.gather(*[ctx.publish(topic, f"r{i}") for i in range(start, min(count, start + 20))])
        last = max(last, *seqs)
    return last
