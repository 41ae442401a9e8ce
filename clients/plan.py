"""Who subscribes where and who publishes what: a pattern made concrete.

Pure arithmetic over the LoadSpec, kept apart from the event loop so it can
be tested on its own and so every engine spreads clients the same way:

- fanout: one publisher; subscribers round-robin over ``topics``; message i
  goes to topic i mod topics.
- echo: client c has its own topic c and publishes every clients-th message
  (rate/clients each), receiving its own messages back.
- chat: client c sits in room c mod topics and publishes every clients-th
  message to its room; everyone in the room receives it (the sender too).

Routes: with WebSocket or TCP and ``upstream = transport``, echo and chat
clients publish on their own socket ("sub" role: the message travels up the
subscriber connection) and fanout uses one publish-only socket per topic
("pub" role); everything else POSTs over the publisher pool ("pub" role).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import LoadSpec

__all__ = ["Plan", "ROUTE_POST", "ROUTE_WS_PUB", "ROUTE_WS_SUB", "make_plan"]

ROUTE_POST = "post"  # POST /publish on the publisher pool
ROUTE_WS_PUB = "ws_pub"  # a publish-only WebSocket (or TCP connection) per topic (?subscribe=0)
ROUTE_WS_SUB = "ws_sub"  # the sending client's own WebSocket (or TCP connection)


@dataclass(frozen=True, slots=True)
class Plan:
    topics: tuple[str, ...]
    #: sub_topic[c]: the topic number client c subscribes to.
    sub_topic: np.ndarray
    #: subscribers_per_topic[k]: how many clients receive what goes to topic k.
    subscribers_per_topic: np.ndarray
    #: How messages go up: one of the ROUTE_* values.
    route: str

    def topic_of(self, count: int, spec: LoadSpec) -> np.ndarray:
        """topic_of[i]: the topic number message i goes to, for ``count`` messages."""
        index = np.arange(count, dtype=np.int64)
        if spec.pattern == "fanout":
            return index % len(self.topics)
        return self.sub_topic[index % spec.clients]

    def sender_of(self, count: int, spec: LoadSpec) -> np.ndarray:
        """sender_of[i]: the client that publishes message i (-1: the publisher)."""
        index = np.arange(count, dtype=np.int64)
        if spec.pattern == "fanout":
            return np.full(count, -1, dtype=np.int64)
        return index % spec.clients

    @property
    def messages_up_on_sub(self) -> bool:
        return self.route == ROUTE_WS_SUB


def make_plan(spec: LoadSpec) -> Plan:
    n_topics = spec.topic_count
    clients = np.arange(spec.clients, dtype=np.int64)
    sub_topic = clients if spec.pattern == "echo" else clients % n_topics
    if spec.transport_upstream:
        route = ROUTE_WS_PUB if spec.pattern == "fanout" else ROUTE_WS_SUB
    else:
        route = ROUTE_POST
    return Plan(
        topics=tuple(spec.topic(k) for k in range(n_topics)),
        sub_topic=sub_topic,
        subscribers_per_topic=np.bincount(sub_topic, minlength=n_topics),
        route=route,
    )
