"""Origin policy rules, generated for every endpoint it covers (/poll, /stream, /ws, /publish):
no Origin and same origin pass, another port or host is 403 (OPTIONS and POST included,
and the refused publish is not executed), allowed origins get CORS headers and preflights."""

from __future__ import annotations

from dataclasses import dataclass

from .core import Ctx, Skip, check, expect_error, rule
from .wire import Response

__all__ = ["ENDPOINTS"]

DENIED = "http://probe-denied.invalid"


@dataclass(frozen=True)
class Endpoint:
    name: str
    transport: str
    method: str
    path: str  # with {topic}
    ok: int  # the status of an allowed request

    def url(self, topic: str) -> str:
        return self.path.format(topic=topic)


ENDPOINTS = [
    Endpoint("poll", "longpoll", "GET", "/poll?topic={topic}&timeout=0", 204),
    Endpoint("stream", "stream", "GET", "/stream?topic={topic}", 200),
    Endpoint("ws", "websocket", "GET", "/ws?topic={topic}", 101),
    Endpoint("publish", "", "POST", "/publish?topic={topic}", 200),
]


async def _send(ctx: Ctx, ep: Endpoint, topic: str, headers: dict) -> Response:
    """One request; for streams and upgrades only the head is read."""
    if ep.name == "ws":
        headers = {**ctx.ws_headers(), **headers}
    if ep.name in ("ws", "stream"):
        conn = await ctx.connect()
        conn.send(ep.method, ep.url(topic), headers, keep_alive=True)
        head = await conn.head()
        body = b""
        if head.status not in (101, 200):
            body = await conn.body_reader(head).read_all()
        conn.close()
        return Response(head.status, head.reason, head.headers, head.elapsed_s, body)
    return await ctx.request(ep.method, ep.url(topic), headers, b"o" if ep.method == "POST" else b"")


def _allowed_origin(ctx: Ctx) -> str:
    allowed = ctx.options.allowed_origin
    return "http://probe-any.example" if allowed == "*" else allowed.rstrip("/")


def _make(ep: Endpoint) -> None:
    t = ep.transport

    @rule(f"origin.same.{ep.name}", f"{ep.path.split('?')[0]}: same origin (scheme, host, port; default "
          "port normalised) is allowed", t)
    async def same(ctx: Ctx) -> None:
        scheme, default = ctx.target.scheme, 443 if ctx.target.scheme == "https" else 80
        for host, origin in ((ctx.target.authority, ctx.target.origin),
                             ("probe.example", f"{scheme}://probe.example:{default}"),
                             (f"probe.example:{default}", f"{scheme}://probe.example")):
            resp = await _send(ctx, ep, ctx.topic("so"), {"Host": host, "Origin": origin})
            check(resp.status == ep.ok, f"{ep.method} {ep.path.split('?')[0]} Host {host}, Origin {origin}",
                  ep.ok, f"{resp.status} {resp.body[:100]!r}")

    @rule(f"origin.other-port.{ep.name}", f"{ep.path.split('?')[0]}: same host, another port is 403", t)
    async def other_port(ctx: Ctx) -> None:
        if ctx.options.allowed_origin == "*":
            raise Skip("the server allows every origin (--allowed-origin '*')")
        origin = f"{ctx.target.scheme}://{ctx.target.host}:{ctx.target.port + 1}"
        expect_error(await _send(ctx, ep, ctx.topic("op"), {"Origin": origin}), 403, f"Origin {origin}")

    @rule(f"origin.denied.{ep.name}", f"{ep.path.split('?')[0]}: a foreign Origin is 403 "
          '{"error":"origin not allowed","origin"} (OPTIONS too; not executed)', t)
    async def denied(ctx: Ctx) -> None:
        if ctx.options.allowed_origin == "*":
            raise Skip("the server allows every origin (--allowed-origin '*')")
        topic = ctx.topic("den")
        obj = expect_error(await _send(ctx, ep, topic, {"Origin": DENIED}), 403, f"Origin {DENIED}")
        check(obj.get("error") == "origin not allowed" and obj.get("origin") == DENIED, "403 body",
              {"error": "origin not allowed", "origin": DENIED}, obj)
        resp = await ctx.request("OPTIONS", ep.url(topic), {"Origin": DENIED, "Access-Control-Request-Method": ep.method})
        expect_error(resp, 403, f"OPTIONS with Origin {DENIED}")
        if ep.name == "publish":
            seq = await ctx.publish(topic, "after")
            check(seq == 1, "the refused publish was not executed", "next seq 1", seq)

    @rule(f"origin.cors.{ep.name}", f"{ep.path.split('?')[0]}: an allowed cross origin gets "
          "Allow-Origin, Vary: Origin, Expose-Headers: Duplexbench-Epoch", t, needs="allowed_origin")
    async def cors(ctx: Ctx) -> None:
        origin = _allowed_origin(ctx)
        resp = await _send(ctx, ep, ctx.topic("cors"), {"Origin": origin})
        check(resp.status == ep.ok, f"Origin {origin}", ep.ok, f"{resp.status} {resp.body[:100]!r}")
        if ep.name == "ws":
            return  # CORS headers mean nothing on a 101
        check(resp.get("access-control-allow-origin") == origin, "Access-Control-Allow-Origin", origin,
              resp.get("access-control-allow-origin"))
        vary = ",".join(resp.get_all("vary")).lower()
        check("origin" in vary, "Vary", "Origin", vary)
        expose = ",".join(resp.get_all("access-control-expose-headers")).lower()
        check("duplexbench-epoch" in expose, "Access-Control-Expose-Headers", "Duplexbench-Epoch", expose)

    @rule(f"origin.preflight.{ep.name}", f"OPTIONS {ep.path.split('?')[0]} from an allowed origin: 204 "
          "with Allow-Methods, Allow-Headers, Max-Age 600", t, needs="allowed_origin")
    async def preflight(ctx: Ctx) -> None:
        origin = _allowed_origin(ctx)
        resp = await ctx.request("OPTIONS", ep.url(ctx.topic("pf")), {
            "Origin": origin, "Access-Control-Request-Method": ep.method,
            "Access-Control-Request-Headers": "content-type, last-event-id"})
        check(resp.status == 204, "preflight status", 204, f"{resp.status} {resp.body[:100]!r}")
        want = {"access-control-allow-origin": origin,
                "access-control-allow-methods": "GET, POST, OPTIONS",
                "access-control-allow-headers": "Content-Type, Last-Event-ID, Accept",
                "access-control-max-age": "600"}
        got = {k: resp.get(k) for k in want}
        check({k: _tokens(v) for k, v in got.items()} == {k: _tokens(v) for k, v in want.items()},
              "preflight headers", want, got)


def _tokens(value: str | None) -> list[str]:
    return sorted(t.strip().lower() for t in (value or "").split(",") if t.strip())


for _endpoint in ENDPOINTS:
    _make(_endpoint)
