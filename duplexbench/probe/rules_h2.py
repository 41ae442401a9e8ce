"""HTTP/2 rules (``--h2``): the contract over HTTP/2 is the same contract, only HTTP's framing
changes. ALPN selects h2 over TLS (and the port still serves HTTP/1.1); every answer over h2
has the contract's status, content type and epoch and no connection-specific header (RFC 9113
8.2.2); streams carry bare events (no chunk framing), each flushed as it is published; streams
of one connection are served side by side; h2c with prior knowledge where offered
(``--h2c-url``); WebSocket as RFC 8441 where the server advertises it.

They run only when asked: ``--h2 on`` (a server that offers no HTTP/2 fails them) or
``--h2 auto`` (they skip when it offers none, e.g. before measuring an HTTP/1.1-only path).
"""

from __future__ import annotations

import asyncio
import os

from duplexbench.contract.websocket import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, encode_frame, parse_frame

from .core import Ctx, Fail, Skip, check, parse_json, rule, short, soon
from .envelopes import check_envelope
from .h2wire import H2Conn, H2Stream, alpn_context
from .wire import Conn, Target, WireError

__all__: list[str] = []

H2 = "h2"
SSE = [("accept", "text/event-stream")]
NDJSON = [("accept", "application/x-ndjson")]
HEAD_WAIT_S = 1.5  # a stream's head must come at once, before any message


async def _h2(ctx: Ctx, target: Target | None = None) -> H2Conn:
    """An HTTP/2 connection to the server: ALPN h2 on an https URL, else h2c on --h2c-url."""
    opts = ctx.options
    if target is None:
        if ctx.target.scheme == "https":
            target = ctx.target
        elif opts.h2c_url:
            target = Target.parse(opts.h2c_url)
        else:
            raise Skip("no HTTP/2 endpoint: the URL is http:// (give https:// for ALPN h2, "
                       "or --h2c-url for cleartext HTTP/2)")
    try:
        conn = await H2Conn.open(target, opts.ca_file)
    except WireError as exc:
        if opts.h2 == "auto":
            raise Skip(f"the server offers no HTTP/2 ({exc})") from None
        raise Fail(f"{target.origin} speaks HTTP/2", "h2", str(exc)) from None
    ctx._conns.append(conn)  # aborted with the rule's other connections
    return conn


def _no_connection_headers(stream: H2Stream, what: str) -> None:
    bad = stream.connection_specific()
    check(not bad, f"{what}: no connection-specific header over HTTP/2 (RFC 9113 8.2.2)",
          "none of Connection, Keep-Alive, Transfer-Encoding, Upgrade", bad)


def _answer(stream: H2Stream, what: str, status: int, content_type: str | None) -> None:
    check(stream.status == status, f"{what} status", status, f"{stream.status} {short(stream.body)}")
    if content_type is not None:
        check((stream.get("content-type") or "").startswith(content_type), f"{what} content-type",
              content_type, stream.get("content-type"))
    _no_connection_headers(stream, what)


async def _get(conn: H2Conn, path: str, headers=()) -> H2Stream:
    return await soon(conn.done(conn.request("GET", path, list(headers))), f"GET {path} over h2")


@rule("h2.alpn", "TLS: ALPN offering h2 and http/1.1 selects h2", needs=H2)
async def _alpn(ctx: Ctx) -> None:
    if ctx.target.scheme != "https":
        raise Skip("not TLS: ALPN needs an https:// URL (cleartext HTTP/2: --h2c-url)")
    context = alpn_context(ctx.options.ca_file, ["h2", "http/1.1"])
    _, writer = await asyncio.open_connection(ctx.target.host, ctx.target.port, ssl=context,
                                              server_hostname=ctx.target.host)
    selected = writer.get_extra_info("ssl_object").selected_alpn_protocol()
    writer.transport.abort()
    if selected != "h2" and ctx.options.h2 == "auto":
        raise Skip(f"the server offers no HTTP/2 (ALPN selected {selected or 'nothing'})")
    check(selected == "h2", "ALPN selects h2", "h2", selected or "nothing")


@rule("h2.alpn-http1", "TLS: the h2 port still serves HTTP/1.1 clients (ALPN http/1.1)", needs=H2)
async def _alpn_http1(ctx: Ctx) -> None:
    if ctx.target.scheme != "https":
        raise Skip("not TLS: ALPN needs an https:// URL")
    await _h2(ctx)  # only where HTTP/2 is offered (skips or fails otherwise)
    t = ctx.target
    conn = await Conn.open(Target(t.scheme, t.host, t.port, alpn_context(ctx.options.ca_file,
                                                                           ["http/1.1"])))
    ctx._conns.append(conn)
    conn.send("GET", "/healthz")
    head = await conn.head()
    check(head.status == 200, "GET /healthz over HTTP/1.1 on the h2 port", 200, head.status)


@rule("h2.healthz", "HTTP/2: GET /healthz 200 JSON with the server's epoch", needs=H2)
async def _healthz(ctx: Ctx) -> None:
    conn = await _h2(ctx)
    stream = await _get(conn, "/healthz")
    _answer(stream, "GET /healthz over h2", 200, "application/json")
    obj = parse_json(stream.body, "/healthz over h2")
    check(isinstance(obj, dict) and obj.get("epoch") == ctx.epoch, "/healthz over h2: the same epoch",
          ctx.epoch, short(stream.body))


@rule("h2.publish", "HTTP/2: POST /publish answers 200 {\"seq\":N}", needs=H2)
async def _publish(ctx: Ctx) -> None:
    conn = await _h2(ctx)
    topic = ctx.topic("h2p")
    for expected in (1, 2):
        stream = conn.request("POST", f"/publish?topic={topic}", [("content-type", "text/plain")],
                              f"h2-{expected}".encode())
        await soon(conn.done(stream), "POST /publish over h2")
        _answer(stream, "POST /publish over h2", 200, "application/json")
        obj = parse_json(stream.body, "publish answer over h2")
        check(obj == {"seq": expected}, "POST /publish over h2 answers the seq", {"seq": expected},
              short(stream.body))


@rule("h2.poll", "HTTP/2: /poll 200 JSON batch with the epoch, 204 on timeout; no connection headers",
      "longpoll", needs=H2)
async def _poll(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    conn = await _h2(ctx)
    topic = ctx.topic("h2l")
    seq = await ctx.publish(topic, "h2-poll")
    stream = await _get(conn, f"/poll?topic={topic}&cursor={epoch}-0&timeout=0")
    _answer(stream, "GET /poll over h2", 200, "application/json")
    check(stream.get("duplexbench-epoch") == epoch, "/poll over h2: Duplexbench-Epoch", epoch,
          stream.get("duplexbench-epoch"))
    check("no-cache" in (stream.get("cache-control") or ""), "/poll over h2: Cache-Control",
          "no-cache", stream.get("cache-control"))
    items = parse_json(stream.body, "/poll batch over h2")
    check(isinstance(items, list) and [m.get("seq") for m in items] == [seq],
          "/poll over h2 returns the message", [seq], short(stream.body))
    # A held poll on the same connection answers the next publish.
    held = conn.request("GET", f"/poll?topic={topic}&cursor={epoch}-{seq}&timeout=3")
    await asyncio.sleep(0.1)
    seq2 = await ctx.publish(topic, "h2-held")
    await soon(conn.done(held), "a held /poll over h2 answers the next publish")
    check(held.status == 200 and f'"seq":{seq2}'.encode() in held.body,
          "held /poll over h2 answers with the new message", seq2, f"{held.status} {short(held.body)}")
    empty = await _get(conn, f"/poll?topic={topic}&cursor={epoch}-{seq2}&timeout=0")
    _answer(empty, "/poll over h2 with nothing new (timeout=0)", 204, None)


async def _stream_rule(ctx: Ctx, accept, first: bytes, what: str, end: bytes) -> None:
    epoch = ctx.need_epoch()
    conn = await _h2(ctx)
    topic = ctx.topic("h2s")
    stream = conn.request("GET", f"/stream?topic={topic}", accept)
    await soon(conn.head(stream), f"{what} over h2: the head before any message", HEAD_WAIT_S)
    ctype = "text/event-stream" if first.startswith(b"retry") else "application/x-ndjson"
    _answer(stream, f"{what} over h2", 200, ctype)
    check(stream.get("duplexbench-epoch") == epoch, f"{what} over h2: Duplexbench-Epoch", epoch,
          stream.get("duplexbench-epoch"))
    if first:
        await soon(conn.until(stream, first), f"{what} over h2: the preamble at once")
    for i in range(2):  # each message arrives as it is published, the stream still open
        seq = await ctx.publish(topic, f"h2-{i}")
        marker = b'{"seq":%d,' % seq
        await soon(conn.until(stream, marker), f"{what} over h2: message {seq} flushed at once")
        check(not stream.ended, f"{what} over h2 stays open", "open", "ended")
    body = stream.body
    # HTTP/1.1 chunk framing would show as hex sizes and CRLFs; the contract writes LF only.
    # (A heartbeat may come first on NDJSON: a blank line.)
    check(body.startswith(first) if first else body.lstrip(b"\n").startswith(b'{"seq":'),
          f"{what} over h2: bare events (no chunk framing)", short(first or b'{"seq":...'),
          short(body[:60]))
    check(b"\r\n" not in body, f"{what} over h2: no chunk framing (CRLF)", "LF only",
          short(body[:80]))
    raw = body[body.index(b'{"seq":'):]
    check_envelope(raw[:raw.index(b"}") + 1], topic=topic, data="h2-0")
    check(body.endswith(end), f"{what} over h2: an event ends with {end!r}", end, short(body[-20:]))


@rule("h2.sse", "HTTP/2: SSE 200 text/event-stream, head at once, preamble, each event flushed; "
      "no chunk framing", "stream", needs=H2)
async def _sse(ctx: Ctx) -> None:
    await _stream_rule(ctx, SSE, b"retry: 1000\nid: %s-0\n\n" % ctx.need_epoch().encode(),
                       "SSE", b"\n\n")


@rule("h2.ndjson", "HTTP/2: NDJSON 200 application/x-ndjson, head at once, each line flushed",
      "stream", needs=H2)
async def _ndjson(ctx: Ctx) -> None:
    await _stream_rule(ctx, NDJSON, b"", "NDJSON", b"}\n")


@rule("h2.multiplex", "HTTP/2: streams of one connection are served side by side (SSE, NDJSON, "
      "a publish)", "stream", needs=H2)
async def _multiplex(ctx: Ctx) -> None:
    conn = await _h2(ctx)
    topic = ctx.topic("h2m")
    sse = conn.request("GET", f"/stream?topic={topic}", SSE)
    nd = conn.request("GET", f"/stream?topic={topic}", NDJSON)
    for s in (sse, nd):
        await soon(conn.head(s), "both stream heads on one connection", HEAD_WAIT_S)
    post = conn.request("POST", f"/publish?topic={topic}", [], b"together")
    await soon(conn.done(post), "a POST while two streams are open on the connection")
    check(post.status == 200, "POST beside open streams", 200, post.status)
    for s, what in ((sse, "SSE"), (nd, "NDJSON")):
        await soon(conn.until(s, b'"data":"together"'), f"{what} stream gets the message")


async def _frames(conn: H2Conn, stream: H2Stream, count: int, what: str) -> list[tuple[int, bytes]]:
    frames = []
    while len(frames) < count:
        parsed = parse_frame(stream.body[stream.taken:])
        if parsed is None:
            if stream.ended:
                raise Fail(what, f"{count} frames", f"the stream ended after {len(frames)}")
            await soon(conn._wait(stream), what)
            continue
        opcode, _, payload, size = parsed
        stream.taken += size
        if opcode not in (OP_PING, OP_PONG):
            frames.append((opcode, payload))
    return frames


@rule("h2.ws-rfc8441", "HTTP/2 WebSocket where advertised (RFC 8441): CONNECT :protocol websocket "
      "200 with the epoch, envelopes as text frames, Close echoed", "websocket", needs=H2)
async def _ws8441(ctx: Ctx) -> None:
    epoch = ctx.need_epoch()
    conn = await _h2(ctx)
    if not conn.connect_protocol:
        raise Skip("the server does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL: its WebSocket "
                   "is the HTTP/1.1 upgrade only")
    topic = ctx.topic("h2w")
    stream = conn.request("CONNECT", f"/ws?topic={topic}", [("sec-websocket-version", "13")],
                          end_stream=False, protocol="websocket")
    await soon(conn.head(stream), "the answer to an extended CONNECT")
    _answer(stream, "CONNECT /ws (RFC 8441)", 200, None)
    check(stream.get("duplexbench-epoch") == epoch, "CONNECT /ws: Duplexbench-Epoch", epoch,
          stream.get("duplexbench-epoch"))
    seq = await ctx.publish(topic, "over-8441")
    (opcode, payload), = await _frames(conn, stream, 1, "a text frame per envelope on the stream")
    check(opcode == OP_TEXT, "the envelope is a text frame", OP_TEXT, opcode)
    check_envelope(payload, seq=seq, topic=topic, data="over-8441")
    conn.send_data(stream, encode_frame(OP_CLOSE, (1000).to_bytes(2, "big"), mask=os.urandom(4)))
    (opcode, payload), = await _frames(conn, stream, 1, "the Close is echoed")
    check(opcode == OP_CLOSE and payload[:2] == (1000).to_bytes(2, "big"), "Close echoed with 1000",
          "Close 1000", f"opcode {opcode} {payload[:2].hex()}")


@rule("h2c.prior-knowledge", "h2c: the cleartext port takes the HTTP/2 preface (prior knowledge) "
      "and serves /healthz", needs="h2c_url")
async def _h2c(ctx: Ctx) -> None:
    target = Target.parse(ctx.options.h2c_url)
    check(target.scheme == "http", "--h2c-url is cleartext", "http://HOST:PORT", ctx.options.h2c_url)
    try:
        conn = await H2Conn.open(target, tls=False)
    except WireError as exc:
        raise Fail(f"{target.origin} answers the HTTP/2 preface", "SETTINGS", str(exc)) from None
    ctx._conns.append(conn)
    stream = await _get(conn, "/healthz")
    _answer(stream, "GET /healthz over h2c", 200, "application/json")
