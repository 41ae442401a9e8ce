"""Broken HTTP/2 servers for the probe's h2 rules (tests/probe/test_probe_h2.py), and which
rules each makes fail (``H2_BREAKAGES``, counted by test_probe_broken's coverage check).

The h2 rules need HTTP/2 servers, so their breakages are servers rather than the middlewares
of _broken.py: a "leaky" h2c front (a real HTTP/2 server, the ``h2`` library's server side,
relaying to the real app over HTTP/1.1 and passing HTTP/1.1's framing through), the same
front serving one stream at a time, an HTTP/1.1-only TLS server (ALPN never selects h2) and
an HTTP/1.1 port given as the h2c URL.
"""

from __future__ import annotations

import asyncio
import contextlib

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, StreamEnded
from h2.settings import SettingCodes, Settings

__all__ = ["H2_BREAKAGES", "leaky_h2c_front"]

#: breakage -> the h2 rules it must fail (the tests of test_probe_h2.py check each).
H2_BREAKAGES = {
    "leaky h2c front": ("h2.healthz", "h2.publish", "h2.poll", "h2.sse", "h2.ndjson",
                        "h2.ws-rfc8441", "h2c.prior-knowledge"),
    "one stream at a time": ("h2.multiplex",),
    "HTTP/1.1-only TLS server": ("h2.alpn", "h2.alpn-http1", "h2.healthz", "h2.sse",
                                 "h2.ws-rfc8441"),
    "HTTP/1.1 port as the h2c URL": ("h2c.prior-knowledge",),
}


@contextlib.asynccontextmanager
async def leaky_h2c_front(upstream: str, max_streams: int = 100):
    """h2c on a free port, each request relayed to ``upstream`` over HTTP/1.1 with its
    response head and raw body (chunk framing included) copied onto the HTTP/2 stream;
    ``max_streams``: its SETTINGS_MAX_CONCURRENT_STREAMS (1 = one stream at a time)."""
    host, port = upstream.split("://")[1].split(":")

    async def relay(h2, writer, sid, headers, body):
        method, path = headers[b":method"], headers[b":path"]
        reader_up, writer_up = await asyncio.open_connection(host, int(port))
        extra = b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers.items()
                         if not k.startswith(b":") and k != b"content-length")
        # Connection: close, so a complete answer ends the relay (streams never end).
        writer_up.write(b"%s %s HTTP/1.1\r\nHost: %s:%s\r\n%sContent-Length: %d\r\n"
                        b"Connection: close\r\n\r\n%s" % (method, path, host.encode(),
                                                          port.encode(), extra, len(body), body))
        head = await reader_up.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = [(b":status", lines[0].split(" ")[1].encode())]
        fields += [(k.strip().lower().encode(), v.strip().encode())
                   for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
        # Transfer-Encoding passed through, and the Connection header an HTTP/1.1 server adds.
        h2.send_headers(sid, fields + [(b"connection", b"keep-alive")])
        writer.write(h2.data_to_send())
        while data := await reader_up.read(65536):
            h2.send_data(sid, data)  # chunk framing passed through
            writer.write(h2.data_to_send())
        h2.end_stream(sid)
        writer.write(h2.data_to_send())
        writer_up.close()

    async def serve(reader, writer):
        h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None,
                                          validate_outbound_headers=False,
                                          normalize_outbound_headers=False))
        h2.local_settings = Settings(client=False, initial_values={
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,  # RFC 8441 advertised, then refused below
            SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})
        h2.initiate_connection()
        writer.write(h2.data_to_send())
        requests, tasks = {}, []
        try:
            while data := await reader.read(65536):
                for ev in h2.receive_data(data):
                    if isinstance(ev, RequestReceived):
                        requests[ev.stream_id] = (dict(ev.headers), b"")
                        if dict(ev.headers)[b":method"] == b"CONNECT":
                            h2.send_headers(ev.stream_id, [(b":status", b"501")], end_stream=True)
                    elif isinstance(ev, DataReceived) and ev.stream_id in requests:
                        h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        fields, body = requests[ev.stream_id]
                        requests[ev.stream_id] = (fields, body + ev.data)
                    elif isinstance(ev, StreamEnded) and ev.stream_id in requests:
                        fields, body = requests.pop(ev.stream_id)
                        tasks.append(asyncio.create_task(relay(h2, writer, ev.stream_id,
                                                               fields, body)))
                writer.write(h2.data_to_send())
        except (ConnectionError, OSError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
