"""The message envelope: identical JSON on every transport.

An envelope is ``{"seq":N,"topic":"T","ts":NS,"data":"..."}`` with compact
separators and keys in that order, so the same message costs the same bytes on
every transport and only the framing around it differs.

- ``seq``: the topic's sequence number, assigned by the hub, from 1.
- ``ts``: the publisher's timestamp in nanoseconds (the clock is the
  publisher's choice; the hub stamps ``time.time_ns()`` when none is given),
  an integer 0 <= ts < 2**63. It exceeds 2**53, so JavaScript's ``JSON.parse``
  rounds it: JS readers take the digits (``JSON.parse`` reviver with
  ``context.source``, Chromium >= 114, or a regex).
- ``data``: the payload as text (publish bodies must be UTF-8).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = [
    "ContractError",
    "Envelope",
    "MAX_TOPIC_LENGTH",
    "MAX_TS",
    "TOPIC_PATTERN",
    "decode_envelope",
    "encode_envelope",
    "validate_topic",
]

MAX_TOPIC_LENGTH = 64
#: ``ts`` (ns) fits a signed 64-bit integer.
MAX_TS = 2**63 - 1
#: Topic names are short, URL-safe and case-sensitive.
TOPIC_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,%d}" % MAX_TOPIC_LENGTH)


class ContractError(ValueError):
    """Input that breaks the contract; the message is safe to show a client."""


@dataclass(frozen=True, slots=True)
class Envelope:
    seq: int
    topic: str
    ts: int
    data: str


def encode_envelope(seq: int, topic: str, ts: int, data: str) -> bytes:
    """Encode one envelope; the server encodes once and fans the bytes out."""
    return (
        b'{"seq":%d,"topic":%s,"ts":%d,"data":%s}'
        % (seq, _json_str(topic), ts, _json_str(data))
    )


def _json_str(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


def decode_envelope(raw: bytes | str) -> Envelope:
    """Parse one envelope; raises :class:`ContractError` when it is not one."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ContractError(f"envelope is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ContractError("envelope is not a JSON object")
    try:
        seq, topic, ts, data = obj["seq"], obj["topic"], obj["ts"], obj["data"]
    except KeyError as exc:
        raise ContractError(f"envelope lacks {exc.args[0]!r}") from None
    if not (isinstance(seq, int) and isinstance(ts, int)):
        raise ContractError("envelope seq and ts must be integers")
    if not (isinstance(topic, str) and isinstance(data, str)):
        raise ContractError("envelope topic and data must be strings")
    return Envelope(seq, topic, ts, data)


def validate_topic(topic: str | None) -> str:
    """Return the topic, or raise :class:`ContractError` saying what is wrong."""
    if topic is None or topic == "":
        raise ContractError("missing topic: add ?topic=NAME")
    if not TOPIC_PATTERN.fullmatch(topic):
        raise ContractError(
            f"bad topic {topic[:80]!r}: use 1-{MAX_TOPIC_LENGTH} characters of A-Z a-z 0-9 _ . -"
        )
    return topic
