"""Deliberately broken servers for the probe's tests: the real app, each with one rule broken.

A breakage is a request/response middleware put in front of the real app, or
a patch of the aiohttp class the servers write through (prepare / write /
WebSocket frames), so it breaks the *behaviour* whatever the servers' code
looks like inside. The plain-TCP listener's breakages are in _broken_tcp.py.
Each breakage names the rules that must then fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

from aiohttp import WSMsgType, http_websocket, web, web_ws

from servers.app import make_app
from servers.config import parse_config

from ._broken_tcp import TCP_BREAKAGES

__all__ = ["ALLOWED", "BREAKAGES", "HEARTBEAT_S", "RETENTION", "ok_200_in_thread", "ok_200_server",
           "real_server"]

ALLOWED = "http://allowed.example"
HEARTBEAT_S = 0.5
RETENTION = 12
SERVER_ARGS = ["--port", "0", "--heartbeat", str(HEARTBEAT_S), "--retention", str(RETENTION),
               "--allow-origin", ALLOWED]


@contextlib.asynccontextmanager
async def real_server(middleware=None):
    """The project's app in this event loop on a free loopback port (real sockets)."""
    app = make_app(parse_config(SERVER_ARGS))
    if middleware is not None:
        app.middlewares.insert(0, web.middleware(middleware))
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def ok_200_server():
    """A raw server that answers every request (even garbage) with ``200 []``."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 2\r\nConnection: close\r\n\r\n[]")
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@contextlib.contextmanager
def ok_200_in_thread():
    """:func:`ok_200_server` on its own thread, for tests that run a command against it."""
    import threading

    ready, urls, holder = threading.Event(), [], {}

    async def main():
        holder["loop"], holder["stop"] = asyncio.get_running_loop(), asyncio.Event()
        async with ok_200_server() as url:
            urls.append(url)
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the 200 [] server did not start"
    try:
        yield urls[0]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(5)


# -- helpers to write breakages ------------------------------------------------

def _rewrite(request: web.Request, query=None, drop_headers=(), headers=None) -> web.Request:
    q = request.rel_url.query.copy()
    if query:
        query(q)
    h = request.headers.copy()
    for name in drop_headers:
        h.popall(name, None)
    h.update(headers or {})
    return request.clone(rel_url=request.rel_url.with_query(q), headers=h)


def mw_request(change):
    async def middleware(request, handler):
        return await handler(change(request))
    return middleware


def mw_response(change):
    async def middleware(request, handler):
        return change(request, await handler(request))
    return middleware


def _json(status: int, body: object) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def patch_prepare(monkeypatch, change_headers, delay_streams_s: float = 0.0):
    original = web.StreamResponse.prepare

    async def prepare(self, request):
        if delay_streams_s and "stream" in request.path:
            await asyncio.sleep(delay_streams_s)
        if not self.prepared:
            change_headers(self.headers)
        return await original(self, request)
    monkeypatch.setattr(web.StreamResponse, "prepare", prepare)


def patch_server_writes(monkeypatch, change):
    """Rewrite what the server's sockets send, at the asyncio transport (servers write
    frames straight to it). Client-side transports (the probe's) are left alone."""
    from asyncio import selector_events

    from aiohttp.web_protocol import RequestHandler

    cls = selector_events._SelectorSocketTransport
    write, writelines = cls.write, cls.writelines

    def patched_write(self, data):
        if isinstance(self._protocol, RequestHandler):
            data = change(bytes(data))
        if data:
            write(self, data)

    def patched_writelines(self, parts):
        patched_write(self, b"".join(bytes(p) for p in parts))
    monkeypatch.setattr(cls, "write", patched_write)
    monkeypatch.setattr(cls, "writelines", patched_writelines)


def map_chunks(fn):
    """A byte rewrite that applies ``fn`` to each HTTP chunk's payload (re-chunked; a chunk
    ``fn`` empties is left out). Anything that does not parse as chunks passes unchanged."""
    def change(data: bytes) -> bytes:
        head = b""
        if data.startswith(b"HTTP/1."):
            end = data.find(b"\r\n\r\n")
            if end < 0 or b"chunked" not in data[:end].lower():
                return data
            head, data = data[: end + 4], data[end + 4:]
        out, pos = [], 0
        while pos < len(data):
            eol = data.find(b"\r\n", pos)
            try:
                size = int(data[pos:eol], 16) if eol >= 0 else -1
            except ValueError:
                size = -1
            if size < 0 or data[eol + 2 + size: eol + 4 + size] != b"\r\n":
                return head + data
            payload, pos = data[eol + 2: eol + 2 + size], eol + 4 + size
            if size == 0:
                out.append(b"0\r\n\r\n")
                continue
            new = fn(payload)
            if new:
                out.append(b"%x\r\n%s\r\n" % (len(new), new))
        return head + b"".join(out)
    return change


def ws_text_as_binary(data: bytes) -> bytes:
    """Server WebSocket frames: every text frame becomes a binary one."""
    from duplexbench.contract.websocket import parse_frame

    if not data or data[0] not in (0x81, 0x88, 0x89, 0x8A):
        return data
    out, pos = bytearray(data), 0
    while pos < len(data):
        parsed = parse_frame(data[pos:])
        if parsed is None:
            return data
        if parsed[0] == 1:
            out[pos] = (out[pos] & 0xF0) | 0x2
        pos += parsed[3]
    return bytes(out)


def patch_ws_receive(monkeypatch, change):
    original = web_ws.WebSocketResponse.receive

    async def receive(self, timeout=None):
        return change(await original(self, timeout))
    monkeypatch.setattr(web_ws.WebSocketResponse, "receive", receive)


def _drop(*names):
    def change(headers):
        for name in names:
            headers.popall(name, None)
    return change


def _strip_cursor_epoch(q):
    for name in ("cursor",):
        if name in q:
            q[name] = q[name].rpartition("-")[2]


def _zero_to_one(q):
    if q.get("cursor", "").rpartition("-")[2] == "0":
        q["cursor"] = "1"


def _empty_lei_400(request, handler):
    async def run():
        if request.headers.get("Last-Event-ID", None) == "":
            return _json(400, {"error": "empty Last-Event-ID"})
        return await handler(request)
    return run()


# -- the breakages: (name, install(monkeypatch) -> middleware | None, rules that must fail) ----

def _b_healthz_no_epoch(mp):
    def change(request, resp):
        if request.path == "/healthz":
            body = json.loads(resp.body)
            body.pop("epoch", None)
            return _json(200, body)
        return resp
    return mw_response(change)


def _b_healthz_not_ok(mp):
    return mw_response(lambda rq, rs: _json(200, {"status": "starting"}) if rq.path == "/healthz" else rs)


def _b_metrics_empty(mp):
    return mw_response(lambda rq, rs: web.Response(text="") if rq.path == "/metrics" else rs)


def _b_404_is_200(mp):
    return mw_response(lambda rq, rs: _json(200, []) if rs.status == 404 else rs)


def _b_405_no_allow(mp):
    def change(rq, rs):
        if rs.status == 405:
            rs.headers.popall("Allow", None)
        return rs
    return mw_response(change)


def _b_publish_accepts_all(mp):
    return mw_response(lambda rq, rs: _json(200, {"seq": 1})
                       if rq.path == "/publish" and 400 <= rs.status < 500 and rs.status != 405 else rs)


def _b_publish_seq_from_0(mp):
    def change(rq, rs):
        if rq.path == "/publish" and rs.status == 200:
            return _json(200, {"seq": json.loads(rs.body)["seq"] - 1})
        return rs
    return mw_response(change)


def _b_ts_ignored(mp):
    return mw_request(lambda rq: _rewrite(rq, lambda q: q.popall("ts", None)) if rq.path == "/publish" else rq)


def _b_envelope_reencoded(mp):
    def change(rq, rs):
        if rq.path == "/poll" and rs.status == 200:
            items = json.loads(rs.body)
            return web.Response(text=json.dumps([dict(sorted(i.items())) for i in items]),
                                content_type="application/json", headers=rs.headers)
        return rs
    return mw_response(change)


def _b_errors_500(mp):
    return mw_response(lambda rq, rs: _json(500, {"error": "boom"})
                       if rs.status == 400 or rs.status == 426 else rs)


def _b_no_cache_control(mp):
    patch_prepare(mp, _drop("Cache-Control"))


def _b_no_epoch_header(mp):
    patch_prepare(mp, _drop("Duplexbench-Epoch"))


def _b_poll_never_holds(mp):
    return mw_request(lambda rq: _rewrite(rq, lambda q: q.__setitem__("timeout", "0"))
                      if rq.path == "/poll" else rq)


def _b_poll_200_empty(mp):
    return mw_response(lambda rq, rs: _json(200, []) if rq.path == "/poll" and rs.status == 204 else rs)


def _b_poll_ignores_max(mp):
    return mw_request(lambda rq: _rewrite(rq, lambda q: q.popall("max", None)) if rq.path == "/poll" else rq)


def _b_epoch_stripped(mp):
    def change(rq):
        lei = rq.headers.get("Last-Event-ID")
        headers = {"Last-Event-ID": lei.rpartition("-")[2]} if lei else None
        return _rewrite(rq, _strip_cursor_epoch, headers=headers)
    return mw_request(change)


def _b_cursor_zero_is_one(mp):
    return mw_request(lambda rq: _rewrite(rq, _zero_to_one))


def _b_cursor_ignored(mp):
    return mw_request(lambda rq: _rewrite(rq, lambda q: q.popall("cursor", None))
                      if rq.path != "/publish" else rq)


def _b_lei_ignored(mp):
    return mw_request(lambda rq: _rewrite(rq, drop_headers=("Last-Event-ID",)))


def _b_empty_lei_refused(mp):
    return _empty_lei_400


def _b_headers_held(mp):
    patch_prepare(mp, lambda h: None, delay_streams_s=2.5)


def _b_sse_no_ids(mp):
    patch_server_writes(mp, map_chunks(lambda d: re.sub(rb"(?m)^id: [^\n]*\n", b"", d)))


def _b_ndjson_crlf(mp):
    patch_server_writes(mp, map_chunks(lambda d: d.replace(b"}\n", b"}\r\n")))


def _b_no_heartbeat(mp):
    patch_server_writes(mp, map_chunks(lambda d: b"" if d == b"\n" or d.startswith(b":") else d))


def _b_ws_extension(mp):
    def change(headers):
        if headers.get("Upgrade", "").lower() == "websocket":
            headers["Sec-WebSocket-Extensions"] = "permessage-deflate"
    patch_prepare(mp, change)


def _b_426_is_400(mp):
    return mw_response(lambda rq, rs: _json(400, {"error": "bad version"}) if rs.status == 426 else rs)


def _b_ws_binary_frames(mp):
    patch_server_writes(mp, ws_text_as_binary)


def _b_ws_string_ts_dropped(mp):
    def change(msg):
        if msg.type is WSMsgType.TEXT and '"ts": "' in msg.data:
            obj = json.loads(msg.data)
            obj.pop("ts")
            return msg._replace(data=json.dumps(obj))
        return msg
    patch_ws_receive(mp, change)


def _b_ws_binary_accepted(mp):
    def change(msg):
        if msg.type is WSMsgType.BINARY:
            return msg._replace(type=WSMsgType.TEXT, data=msg.data.decode())
        return msg
    patch_ws_receive(mp, change)


def _b_close_1009_is_1008(mp):
    original = http_websocket.WebSocketWriter.close

    async def close(self, code=1000, message=b""):
        return await original(self, 1008 if code == 1009 else code, message)
    mp.setattr(http_websocket.WebSocketWriter, "close", close)


def _b_subscribe_ignored(mp):
    return mw_request(lambda rq: _rewrite(rq, lambda q: q.__setitem__("subscribe", "1"))
                      if rq.path == "/ws" else rq)


def _b_pong_empty(mp):
    original = web_ws.WebSocketResponse.pong

    async def pong(self, message=b""):
        return await original(self, b"")
    mp.setattr(web_ws.WebSocketResponse, "pong", pong)


def _b_close_always_1000(mp):
    original = http_websocket.WebSocketWriter.close

    async def close(self, code=1000, message=b""):
        return await original(self, 1000 if code >= 3000 else code, message)
    mp.setattr(http_websocket.WebSocketWriter, "close", close)


def _b_origin_ignored(mp):
    return mw_request(lambda rq: _rewrite(rq, drop_headers=("Origin",)))


def _b_origin_refused(mp):
    async def middleware(request, handler):
        if "Origin" in request.headers:
            return _json(403, {"error": "origin not allowed", "origin": request.headers["Origin"]})
        return await handler(request)
    return middleware


def _b_no_cors_headers(mp):
    patch_prepare(mp, _drop("Access-Control-Max-Age", "Vary"))


ORIGIN_PATHS = ("poll", "stream", "ws", "publish")

BREAKAGES = [
    ("healthz-no-epoch", _b_healthz_no_epoch, ["health.epoch"]),
    ("healthz-not-ok", _b_healthz_not_ok, ["health.ok"]),
    ("metrics-empty", _b_metrics_empty, ["metrics.text"]),
    ("404-is-200", _b_404_is_200, ["http.404"]),
    ("405-no-allow", _b_405_no_allow, ["http.405"]),
    ("publish-accepts-all", _b_publish_accepts_all,
     ["publish.bad-topic", "publish.bad-ts", "publish.utf8", "publish.too-large", "origin.denied.publish"]),
    ("publish-seq-from-0", _b_publish_seq_from_0, ["publish.seq"]),
    ("ts-ignored", _b_ts_ignored, ["publish.ts", "envelope.bytes"]),
    ("envelope-reencoded", _b_envelope_reencoded, ["envelope.bytes", "envelope.same-bytes", "poll.batch"]),
    ("errors-500", _b_errors_500, ["input.no-5xx", "poll.ahead", "stream.ahead", "ws.refusals", "poll.max"]),
    ("no-cache-control", _b_no_cache_control, ["poll.batch", "sse.headers-first", "ndjson.headers-first"]),
    ("no-epoch-header", _b_no_epoch_header, ["poll.epoch-header", "stream.epoch-header", "ws.epoch-header"]),
    ("poll-never-holds", _b_poll_never_holds, ["poll.hold", "poll.204"]),
    ("poll-200-empty", _b_poll_200_empty, ["poll.204", "poll.from-now"]),
    ("poll-ignores-max", _b_poll_ignores_max, ["poll.max"]),
    ("cursor-epoch-stripped", _b_epoch_stripped, ["poll.reset", "sse.reset", "ndjson.reset", "ws.reset"]),
    ("cursor-zero-is-one", _b_cursor_zero_is_one, ["poll.retention", "stream.retention", "ws.retention"]),
    ("cursor-ignored", _b_cursor_ignored, ["poll.epoch-cursor", "ndjson.lines", "ws.cursor"]),
    ("last-event-id-ignored", _b_lei_ignored, ["sse.resume"]),
    ("empty-last-event-id-refused", _b_empty_lei_refused, ["sse.empty-last-event-id"]),
    ("stream-headers-held", _b_headers_held, ["sse.headers-first", "ndjson.headers-first"]),
    ("sse-no-ids", _b_sse_no_ids, ["sse.preamble", "sse.events"]),
    ("ndjson-crlf", _b_ndjson_crlf, ["ndjson.lines"]),
    ("no-heartbeat", _b_no_heartbeat, ["stream.heartbeat"]),
    ("ws-extension", _b_ws_extension, ["ws.handshake"]),
    ("ws-426-is-400", _b_426_is_400, ["ws.refusals"]),
    ("ws-binary-frames", _b_ws_binary_frames, ["ws.deliver"]),
    ("ws-string-ts-dropped", _b_ws_string_ts_dropped, ["ws.publish"]),
    ("ws-binary-accepted", _b_ws_binary_accepted, ["ws.bad-frames"]),
    ("ws-too-big-is-1008", _b_close_1009_is_1008, ["ws.too-big"]),
    ("ws-subscribe-ignored", _b_subscribe_ignored, ["ws.subscribe0"]),
    ("ws-pong-empty", _b_pong_empty, ["ws.ping"]),
    ("ws-close-always-1000", _b_close_always_1000, ["ws.close-echo"]),
    ("origin-ignored", _b_origin_ignored,
     [f"origin.{k}.{p}" for k in ("denied", "other-port") for p in ORIGIN_PATHS]),
    ("origin-refused", _b_origin_refused,
     [f"origin.{k}.{p}" for k in ("same", "cors") for p in ORIGIN_PATHS]),
    ("no-cors-headers", _b_no_cors_headers,
     [f"origin.preflight.{p}" for p in ORIGIN_PATHS] + [f"origin.cors.{p}" for p in ORIGIN_PATHS if p != "ws"]),
] + TCP_BREAKAGES  # tests/probe/_broken_tcp.py: the plain-TCP listener's
