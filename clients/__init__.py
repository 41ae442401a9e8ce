"""Load-generating clients: one asyncio subscriber per transport, file for file
with ``servers/`` (longpoll, stream, websocket), the byte-counting HTTP/1.1
connection they share, the open-loop publisher, and ``python -m
clients.loadgen SPEC.json OUT_DIR``, which runs one load point.

Kept import-light on purpose: the runner imports ``clients.spec`` alone.
"""

__all__: list[str] = []
