"""Long-polling framing: a batch is a JSON array of envelopes.

``200`` carries ``[env,env,…]`` (the client's next cursor is the last seq);
``204`` means the hold timed out with nothing new; ``410`` means the cursor is
older than the retention window: ``{"error":…,"oldest_seq":N}``.
"""

from __future__ import annotations

import json

from .envelope import ContractError, Envelope

__all__ = ["decode_batch", "encode_batch"]


def encode_batch(encoded_envelopes: list[bytes]) -> bytes:
    return b"[" + b",".join(encoded_envelopes) + b"]"


def decode_batch(body: bytes) -> list[Envelope]:
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ContractError(f"poll body is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise ContractError("poll body is not a JSON array")
    return [_from_obj(item) for item in items]


def _from_obj(obj: object) -> Envelope:
    if not isinstance(obj, dict):
        raise ContractError("poll batch item is not a JSON object")
    try:
        env = Envelope(obj["seq"], obj["topic"], obj["ts"], obj["data"])
    except KeyError as exc:
        raise ContractError(f"envelope lacks {exc.args[0]!r}") from None
    if not (isinstance(env.seq, int) and isinstance(env.ts, int) and isinstance(env.data, str)):
        raise ContractError("envelope fields have the wrong types")
    return env
