"""The HTTP version of a point (docs/http2.md): HTTP/1.1 or HTTP/2, through nginx or to the Node reference."""
