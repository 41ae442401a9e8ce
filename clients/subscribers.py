"""Which subscriber a LoadSpec asks for, with which arguments: HTTP/1.1 or HTTP/2, and pages.

Kept apart from clients.point (which runs the point) so that the choice is
one table per HTTP version: ``http = "1.1"`` gives the HTTP/1.1 clients (one
TCP connection each), ``http = "2"`` the HTTP/2 ones (clients.h2sub,
clients.h2ws), whose subscriptions share one connection per page of
``streams_per_connection`` subscribers (:func:`make_subscribers`).
"""

from __future__ import annotations

from .base import Subscriber
from .fastws import FastWebSocketSubscriber
from .h2link import make_links
from .h2sub import H2LongPollSubscriber, H2NDJSONSubscriber, H2SSESubscriber
from .h2ws import H2WebSocketSubscriber
from .longpoll import LongPollSubscriber
from .spec import LoadSpec
from .stream import NDJSONSubscriber, SSESubscriber
from .tcp import TcpSubscriber

__all__ = ["SUBSCRIBERS", "SUBSCRIBERS_H2", "make_subscribers"]

SUBSCRIBERS: dict[str, type[Subscriber]] = {
    "longpoll": LongPollSubscriber,
    "sse": SSESubscriber,
    "ndjson": NDJSONSubscriber,
    "websocket": FastWebSocketSubscriber,
    "tcp": TcpSubscriber,  # no HTTP at all: a line per envelope on a plain socket
}
SUBSCRIBERS_H2: dict[str, type[Subscriber]] = {
    "longpoll": H2LongPollSubscriber,
    "sse": H2SSESubscriber,
    "ndjson": H2NDJSONSubscriber,
    "websocket": H2WebSocketSubscriber,  # RFC 8441; refused where the server has none
}


def make_subscribers(spec: LoadSpec, topics: list[str], raws: list, members: list[int], *,
                     tcp, on_error, on_message, **options) -> list[Subscriber]:
    """One subscriber per member (global client number ``members[j]``, topic ``topics[j]``,
    RawLog ``raws[j]``), not yet started; ``options`` go to every subscriber (``tcp_port``)."""
    ssl_context = spec.ssl_context()
    extra: dict = {"tcp": tcp, "ssl_context": ssl_context,
                   "backoff": (spec.reconnect_min_s, spec.reconnect_max_s), **options}
    if spec.transport == "longpoll":
        extra.update(keepalive=spec.keepalive, max_batch=spec.max_batch,
                     poll_timeout_s=spec.poll_timeout_s)
    addrs = spec.source_addrs
    local = [(addrs[c % len(addrs)], 0) if addrs else None for c in members]
    if spec.http == "2":
        cls = SUBSCRIBERS_H2[spec.transport]
        per = spec.streams_per_connection
        # A page = `per` consecutive members of this process (a shard pages its own).
        links = make_links(len(members), per, spec.sub_url, ssl_context=ssl_context, tcp=tcp,
                           local_addrs=local)
        return [cls(spec.sub_url, topics[j], on_message, on_error=on_error, on_raw=raws[j],
                    local_addr=local[j], link=links[j // per], **extra)
                for j in range(len(members))]
    cls = SUBSCRIBERS[spec.transport]
    return [cls(spec.sub_url, topics[j], on_message, on_error=on_error, on_raw=raws[j],
                local_addr=local[j], **extra)
            for j in range(len(members))]
