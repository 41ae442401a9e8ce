"""The wire contract: the one place servers, clients and the Locust users import.

Everything here is pure code (no sockets, no event loop), tested on its own.
The HTTP surface (paths, parameters, status codes) is in :mod:`.http`, the
message envelope in :mod:`.envelope`, and each transport's framing in its own
module (:mod:`.longpoll`, :mod:`.sse`, :mod:`.ndjson`, :mod:`.websocket`, and
:mod:`.tcp`: plain TCP lines, the floor under the others).
Epochs, cursors and the reset object are in :mod:`.cursor`, the Origin policy in
:mod:`.origin`.
"""

from .cursor import (
    EPOCH_HEADER,
    Cursor,
    Reset,
    decode_message,
    encode_reset,
    format_cursor,
    new_epoch,
    parse_cursor,
    parse_uint,
)
from .envelope import (
    MAX_TS,
    ContractError,
    Envelope,
    decode_envelope,
    encode_envelope,
    validate_topic,
)
from .http import Transport
from .payload import make_payload, payload_index

__all__ = [
    "EPOCH_HEADER",
    "MAX_TS",
    "ContractError",
    "Cursor",
    "Envelope",
    "Reset",
    "Transport",
    "decode_envelope",
    "decode_message",
    "encode_envelope",
    "encode_reset",
    "format_cursor",
    "make_payload",
    "new_epoch",
    "parse_cursor",
    "parse_uint",
    "payload_index",
    "validate_topic",
]
