"""Load-generating clients: one asyncio subscriber per transport, file for file
with ``servers/`` (longpoll, stream, websocket; fastws: the load generator's
picows WebSocket), the HTTP/1.1 connection they share, their HTTP/2 variants
(h2conn, h2sub, h2ws; h2pub for the publisher), the publisher process
(pubproc), kernel byte counts (tcpinfo), the engine core shared with Locust
(core, accounting), sharded points (shard), and ``python -m clients.loadgen
SPEC.json OUT_DIR``, which runs one load point (docs/DESIGN.md "Clients").

Kept import-light on purpose: the runner imports ``clients.spec`` alone.
"""

__all__: list[str] = []
