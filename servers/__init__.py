"""duplexbench's servers: long polling, HTTP streaming and WebSocket over one hub.

``python -m servers --help``; the wire contract is in servers/README.md.
"""

__all__: list[str] = []
