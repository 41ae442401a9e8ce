"""Probe payloads: how a load generator finds a message's intended send time.

The hub treats the payload as opaque text. duplexbench's load generators put
the publish index in front (``"123:xxxx…"``) and pad to the payload size, so a
subscriber can look up when that message was *scheduled* to be sent (for the
coordinated-omission-corrected latency) while the envelope's ``ts`` holds when
it was *actually* sent.
"""

from __future__ import annotations

__all__ = ["make_payload", "payload_index"]

_PAD = "x"


def make_payload(index: int, size: int) -> str:
    """``size`` characters (ASCII, so also bytes) that start with ``index:``."""
    head = f"{index}:"
    if size < len(head):
        return head  # tiny sizes grow by a few bytes rather than lose the index
    return head + _PAD * (size - len(head))


def payload_index(data: str) -> int | None:
    """The publish index in a probe payload, or None for foreign payloads."""
    head, sep, _ = data.partition(":")
    if not sep or not head.isdigit() or len(head) > 12:
        return None
    return int(head)
