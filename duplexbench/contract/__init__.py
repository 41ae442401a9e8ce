"""The wire contract: the one place servers, clients and the Locust users import.

Everything here is pure code (no sockets, no event loop), tested on its own.
The HTTP surface (paths, parameters, status codes) is in :mod:`.http`, the
message envelope in :mod:`.envelope`, and each transport's framing in its own
module (:mod:`.longpoll`, :mod:`.sse`, :mod:`.ndjson`, :mod:`.websocket`).
"""

from .envelope import (
    ContractError,
    Envelope,
    decode_envelope,
    encode_envelope,
    parse_cursor,
    validate_topic,
)
from .http import Transport
from .payload import make_payload, payload_index

__all__ = [
    "ContractError",
    "Envelope",
    "Transport",
    "decode_envelope",
    "encode_envelope",
    "make_payload",
    "parse_cursor",
    "payload_index",
    "validate_topic",
]
