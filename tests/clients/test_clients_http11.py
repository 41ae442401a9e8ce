"""The byte-counting HTTP/1.1 connection, against servers started in the test.

A raw asyncio server answers fixed bytes, so the counts can be checked to the
byte; a small aiohttp app checks chunked streaming, keep-alive and
``Connection: close`` against a real HTTP implementation.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from clients.base import WireStats, parse_base_url
from clients.http11 import ConnectionLost, HTTP11Connection

RAW_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"


async def raw_server(received: list[bytes], response: bytes = RAW_RESPONSE, once: bool = False):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            received.append(head)
            writer.write(response)
            await writer.drain()
            if once:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_counts_every_byte_and_sets_nodelay():
    async def main():
        received: list[bytes] = []
        server, port = await raw_server(received)
        async with server:
            stats = WireStats()
            conn = await HTTP11Connection.open(parse_base_url(f"http://127.0.0.1:{port}"), stats)
            sock = conn.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert conn.nodelay
            first = await conn.request(b"GET", b"/x?y=1")
            second = await conn.request(b"GET", b"/z")  # the same connection: keep-alive
            conn.close()
        assert first.status == 200 and first.body == b"hello" and first.headers["x-a"] == "b"
        assert first.keep_alive and second.body == b"hello"
        assert received[0] == b"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
        assert stats.bytes_up == sum(map(len, received))
        assert stats.bytes_down == 2 * len(RAW_RESPONSE)
        assert stats.http_requests == 2 and stats.connections == 1

    asyncio.run(main())


def test_server_closing_mid_response_raises():
    async def main():
        server, port = await raw_server([], b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", once=True)
        async with server:
            conn = await HTTP11Connection.open(parse_base_url(f"http://127.0.0.1:{port}"), WireStats())
            with pytest.raises(ConnectionLost, match="closed"):
                await asyncio.wait_for(conn.request(b"GET", b"/"), 5)
            with pytest.raises(ConnectionLost, match="is closed"):
                await conn.request(b"GET", b"/")

    asyncio.run(main())


def test_connect_refused_names_the_address():
    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        with pytest.raises(ConnectionLost, match=f"cannot connect to 127.0.0.1:{port}"):
            await HTTP11Connection.open(parse_base_url(f"http://127.0.0.1:{port}"), WireStats())

    asyncio.run(main())


async def aiohttp_app():
    async def chunks(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"one\n", b"two\n", b"three\n"):
            await response.write(part)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), status=201)

    app = web.Application()
    app.router.add_get("/chunks", chunks)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def test_streamed_chunked_body_keepalive_and_close():
    async def main():
        runner, port = await aiohttp_app()
        try:
            stats = WireStats()
            endpoint = parse_base_url(f"http://127.0.0.1:{port}")
            conn = await HTTP11Connection.open(endpoint, stats)
            parts: list[bytes] = []
            head = await conn.request(b"GET", b"/chunks", on_body=parts.append)
            assert head.status == 200 and head.headers["transfer-encoding"] == "chunked"
            await asyncio.wait_for(conn.wait_done(), 5)
            assert b"".join(parts) == b"one\ntwo\nthree\n"
            # Chunk framing is on the wire, so more bytes came than the body.
            assert stats.bytes_down > len(b"one\ntwo\nthree\n") + 100
            answer = await conn.request(b"POST", b"/echo", body=b"payload")
            assert (answer.status, answer.body) == (201, b"payload")
            assert stats.connections == 1 and conn.reusable
            closing = await conn.request(b"POST", b"/echo", body=b"x", close=True)
            assert not closing.keep_alive
            await asyncio.sleep(0.05)
            assert conn.closed and not conn.reusable
            assert stats.http_requests == 3
        finally:
            await runner.cleanup()

    asyncio.run(main())
