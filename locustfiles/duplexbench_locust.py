"""Locust users that speak the duplexbench wire contract, for runs beyond one machine.

Why a locustfile: Locust is the load generator Python users already know (web UI,
CSV stats, master/worker over many machines). Each delivered message fires
Locust's ``request`` event with its delivery latency (now - the envelope's ``ts``,
both ``time.time_ns()``: CLOCK_REALTIME, the only clock machines share), so
Locust's statistics and charts show latency per transport; lost messages (seq
gaps) and client errors fire failures.

Kept apart from the asyncio code on purpose: importing ``locust`` monkey-patches
the standard library with gevent. Only the pure-code ``duplexbench.contract`` is
imported here. Run it directly (see docs/locust.md) or through
``python -m duplexbench.engines.locust SPEC.json OUT_DIR --workers N``, which sets
the ``--db-*`` options from a LoadSpec and collects the records written to
``--db-out`` into the native loadgen's file formats.

Sockets are plain gevent sockets with byte counters (locustfiles/dbwire.py: HTTP
parsed by geventhttpclient's parser, WebSocket by the ``websockets`` sans-I/O
protocol), so bytes on the wire are counted at the socket like the native clients do.
After the run the engine core (clients.core / clients.accounting) turns the records
into the native engine's figures (duplicated, reordered, late, message sizes).
"""

from __future__ import annotations

import json
import time

import gevent
from gevent.queue import Queue
from geventhttpclient.response import HTTPSocketResponse
from locust import User, constant, task

from duplexbench.contract import ContractError, decode_envelope, make_payload, payload_index
from duplexbench.contract.http import ACCEPT_NDJSON, ACCEPT_SSE, PATH_POLL, PATH_STREAM
from duplexbench.contract.longpoll import decode_batch
from duplexbench.contract.ndjson import NDJSONParser
from duplexbench.contract.sse import SSEParser
from duplexbench.contract.websocket import encode_publish

try:  # Locust puts the locustfile's folder on sys.path
    from dbrun import RUN, fire as _fire, opt as _opt, paused as _paused
    from dbrun import phase_bounds as _phase_bounds
    from dbrun import sleep_until as _sleep_until
    from dbwire import ClientFailure, Conn as _Conn, WSConn
    from dbpublish import Poster as _Poster, past_measure_end as _past_measure_end
    from dbpublish import pub_url as _pub_url, record_publish as _record_publish
    from dbpublish import schedule as _schedule, topic_name as _topic_name
except ImportError:  # imported as a package module
    from locustfiles.dbrun import RUN, fire as _fire, opt as _opt, paused as _paused
    from locustfiles.dbrun import phase_bounds as _phase_bounds
    from locustfiles.dbrun import sleep_until as _sleep_until
    from locustfiles.dbwire import ClientFailure, Conn as _Conn, WSConn
    from locustfiles.dbpublish import Poster as _Poster, past_measure_end as _past_measure_end
    from locustfiles.dbpublish import pub_url as _pub_url, record_publish as _record_publish
    from locustfiles.dbpublish import schedule as _schedule, topic_name as _topic_name

__all__ = [
    "LongPollUser",
    "NDJSONUser",
    "PublisherUser",
    "SSEUser",
    "SUBSCRIBER_CLASSES",
    "WebSocketUser",
]

#: Publish indices of per-client publishers (echo, chat) are ``k * INDEX_STRIDE +
#: subscriber id``, so they stay unique across clients and map back to one sender.
INDEX_STRIDE = 1_000_000

# ---------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------


class _Subscriber(User):
    """Subscribe to one topic and receive forever; each delivery is one Locust request."""

    abstract = True
    wait_time = constant(0)
    #: Locust request_type: the transport's column in Locust's statistics.
    label = ""
    transport = ""

    def on_start(self) -> None:
        env = self.environment
        self.sid = RUN.new_subscriber_id()
        self.pattern = _opt(env, "pattern")
        topics = max(1, _opt(env, "topics"))
        self.topic = _topic_name(env, self.sid if self.pattern == "echo" else self.sid % topics)
        # Phased runs start on fresh topics at cursor 0 (every message counts);
        # interactive runs take "from now on" (no cursor) and follow from there.
        self.cursor: int | None = 0 if _opt(env, "clients") > 0 else None
        RUN.local_subscribers.append(self)
        self.wire = RUN.wire["sub"]
        self.read_timeout = _opt(env, "read-timeout")
        self.reported = False
        self.connected_once = False
        self.conn: _Conn | None = None
        self.publisher = None
        if RUN.recorder is not None:
            RUN.recorder.add("subscribers", f"{self.sid},{self.topic}\n")

    def on_stop(self) -> None:
        if self.publisher is not None:
            self.publisher.kill(block=False)
        if self.conn is not None:
            self.conn.close()

    @task
    def receive(self) -> None:
        """Receive until stopped; reconnect from the cursor after a lost connection."""
        backoff = 0.0
        while True:
            try:
                if self.connected_once:
                    self.wire.reconnects += 1
                self.connected_once = True
                self.subscribe_and_receive()
                backoff = 0.0
            except (OSError, ContractError, ClientFailure, ValueError) as exc:
                self.wire.errors += 1
                _fire(self.label, f"error {self.topic}", 0, 0, exc)
                gevent.sleep(backoff)
                backoff = min(1.0, backoff * 2 or 0.02)
            finally:
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None

    def subscribed(self) -> None:
        """Called once the server holds the subscription: report in, maybe start publishing."""
        if self.reported:
            return
        self.reported = True
        runner = self.environment.runner
        if _opt(self.environment, "clients") > 0:
            runner.send_message("db_subscribed", 1)
        if self.pattern in ("echo", "chat"):
            self.publisher = gevent.spawn(self._publish_share)

    def deliver(self, envelope, recv_ns: int, nbytes: int) -> None:
        """Every delivery is recorded (the engine core replays them after the run:
        duplicated and reordered are counted there, as for the native engine)."""
        last = self.cursor
        seq = envelope.seq
        if last is not None and seq > last + 1:
            _fire(self.label, f"lost {envelope.topic}", 0, 0,
                  ClientFailure(f"lost {seq - last - 1} message(s) before seq {seq}"))
        if last is None or seq > last:
            self.cursor = seq
        ms = (recv_ns - envelope.ts) / 1e6
        if ms < 0:  # clock skew between machines: counted (counters.negative_latencies)
            RUN.negative += 1
        _fire(self.label, f"deliver {envelope.topic}", max(0.0, ms), nbytes)
        if RUN.recorder is not None:
            index = payload_index(envelope.data)
            RUN.recorder.add(
                "deliveries",
                f"{self.sid},{seq},{envelope.topic},{'' if index is None else index},"
                f"{envelope.ts},{recv_ns}\n",
            )

    def subscribe_and_receive(self) -> None:  # pragma: no cover - per transport
        raise NotImplementedError

    def cursor_query(self) -> str:
        return "" if self.cursor is None else f"&cursor={self.cursor}"

    # Echo / chat: every client publishes its share of the rate.

    def send_upstream(self, data: str, ts: int) -> int:
        """Publish one message; returns the seq when the transport tells it (POST)."""
        return self._poster.publish(self.topic, data, ts)

    def _publish_share(self) -> None:
        env = self.environment
        RUN.go.wait()
        clients = max(1, _opt(env, "clients") or 1)
        rate = _opt(env, "rate") / clients
        if rate <= 0:
            return
        self._poster = _Poster(_pub_url(env), RUN.wire["pub"])
        # Stagger clients over one period so their publishes do not arrive in bursts.
        first = RUN.t0_ns + int((self.sid % clients) / clients / rate * 1e9)
        for k, intended in enumerate(_schedule(env, first, rate, self.sid)):
            _sleep_until(intended)
            index = k * INDEX_STRIDE + self.sid
            payload = make_payload(index, _opt(env, "payload-bytes"))
            sent = time.time_ns()
            try:
                seq = self.send_upstream(payload, sent)
            except (OSError, ClientFailure, ValueError) as exc:
                RUN.wire["pub"].errors += 1
                _fire("PUBLISH", f"publish {self.topic}", 0, 0, exc)
                continue
            _fire("PUBLISH", f"publish {self.topic}", (time.time_ns() - sent) / 1e6, len(payload))
            _record_publish(index, self.topic, seq, intended, sent)
            if _past_measure_end(env, intended):
                return


class LongPollUser(_Subscriber):
    """GET /poll with the cursor, over one keep-alive connection (or one per poll)."""

    label = "LONGPOLL"
    transport = "longpoll"

    def subscribe_and_receive(self) -> None:
        env = self.environment
        keepalive = bool(_opt(env, "keepalive"))
        hold = _opt(env, "poll-timeout")
        query = f"?topic={self.topic}&timeout={hold:g}&max={_opt(env, 'max-batch')}"
        headers = {} if keepalive else {"Connection": "close"}
        while True:
            if self.conn is None or self.conn.closed:
                self.conn = _Conn(self.environment.host, self.wire, hold + 10)
            self.conn.send_request("GET", PATH_POLL + query + self.cursor_query(), headers)
            # The first poll is on its way: with a cursor nothing published from now
            # on can be missed, so the subscription counts as held.
            self.subscribed()
            response = HTTPSocketResponse(self.conn, method="GET")
            status = response.status_code
            body = response.read()
            if status == 200:
                recv_ns = time.time_ns()
                batch = decode_batch(body)
                size = len(body) // max(1, len(batch))
                for envelope in batch:
                    self.deliver(envelope, recv_ns, size)
            elif status == 410:  # our cursor fell out of retention: count the gap, go on
                oldest = int(json.loads(body)["oldest_seq"])
                _fire(self.label, f"lost {self.topic}", 0, 0,
                      ClientFailure(f"cursor {self.cursor} expired, oldest is {oldest}"))
                self.cursor = oldest - 1
            elif status != 204:
                raise ClientFailure(f"poll answered {status}: {body[:200]!r}")
            if response.should_close():
                self.conn.close()


class _StreamUser(_Subscriber):
    """GET /stream; the framing (SSE or NDJSON) is picked by the Accept header."""

    abstract = True
    accept = ""

    def subscribe_and_receive(self) -> None:
        self.conn = _Conn(self.environment.host, self.wire, self.read_timeout)
        headers = {"Accept": self.accept, "Cache-Control": "no-cache"}
        response = self.conn.request("GET", PATH_STREAM + f"?topic={self.topic}" + self.cursor_query(),
                                     headers)
        if response.status_code != 200:
            raise ClientFailure(f"stream answered {response.status_code}")
        self.subscribed()
        self.receive_lines(response)
        raise ClientFailure("stream ended")  # the server closed it (e.g. slow consumer)


class SSEUser(_StreamUser):
    """Server-Sent Events on /stream; resumes with the cursor (the last event id)."""

    label = "SSE"
    transport = "sse"
    accept = ACCEPT_SSE

    def receive_lines(self, response) -> None:
        parser = SSEParser()
        while True:
            line = response.readline(b"\n")
            if not line:
                return
            recv_ns = time.time_ns()
            for event in parser.feed(line):
                if event.data:
                    self.deliver(decode_envelope(event.data), recv_ns, len(event.data))


class NDJSONUser(_StreamUser):
    """Chunked NDJSON on /stream: one envelope per line, blank lines are heartbeats."""

    label = "NDJSON"
    transport = "ndjson"
    accept = ACCEPT_NDJSON

    def receive_lines(self, response) -> None:
        parser = NDJSONParser()
        while True:
            line = response.readline(b"\n")
            if not line:
                return
            recv_ns = time.time_ns()
            for raw in parser.feed(line):
                self.deliver(decode_envelope(raw), recv_ns, len(raw))


class WebSocketUser(_Subscriber):
    """GET /ws upgraded (RFC 6455), framed by the contract's code; echo/chat publish as frames."""

    label = "WS"
    transport = "websocket"

    def subscribe_and_receive(self) -> None:
        self.conn = WSConn(self.environment.host, f"?topic={self.topic}" + self.cursor_query(),
                           self.wire, self.read_timeout)
        self.subscribed()
        for payload in self.conn.messages():
            self.deliver(decode_envelope(payload), time.time_ns(), len(payload))

    def send_upstream(self, data: str, ts: int) -> int:
        if _opt(self.environment, "upstream") != "transport":
            return super().send_upstream(data, ts)
        if self.conn is None or self.conn.closed:
            raise ClientFailure("WebSocket not connected")
        self.conn.send_text(encode_publish(data, ts).encode())
        return 0  # the seq is not answered over a WebSocket


def _ws_reader(ws: WSConn) -> None:
    """A publish-only socket still reads: to answer pings and notice a close."""
    try:
        for _ in ws.messages():
            pass
    except OSError:
        pass
    ws.close()


SUBSCRIBER_CLASSES = {
    "longpoll": LongPollUser, "sse": SSEUser, "ndjson": NDJSONUser, "websocket": WebSocketUser,
}
RUN.subscriber_classes = SUBSCRIBER_CLASSES


class PublisherUser(User):
    """The fanout publisher: ``--db-rate`` messages/s over all topics, open loop.

    Exactly one (``fixed_count``): the rate is the total, as in the native loadgen.
    Each message's payload starts with its publish index and its ``ts`` is the
    actual send time, so subscribers get a latency from the envelope alone.
    """

    fixed_count = 1
    wait_time = constant(0)

    #: POSTs in flight at once (keep-alive connections), as the native publish_pool.
    POOL = 8

    def on_start(self) -> None:
        env = self.environment
        self.poster = _Poster(_pub_url(env), RUN.wire["pub"])
        # Open loop: a POST waits for its answer in its own greenlet, on one of POOL
        # keep-alive connections, so the schedule never waits for the server.
        self.posters: Queue = Queue()
        self.all_posters = [self.poster] + [_Poster(_pub_url(env), RUN.wire["pub"])
                                            for _ in range(self.POOL - 1)]
        for poster in self.all_posters:
            self.posters.put(poster)
        # Fanout over WebSocket with upstream = transport: one publish-only socket per
        # topic (?subscribe=0), as the native loadgen does, instead of POSTs.
        self.ws_upstream = (_opt(env, "transport") == "websocket"
                            and _opt(env, "upstream") == "transport")
        self.sockets: dict[str, _Conn] = {}

    def on_stop(self) -> None:
        for conn in [*(p.conn for p in self.all_posters), *self.sockets.values()]:
            if conn is not None:
                conn.close()

    def _post(self, index: int, topic: str, payload: str, intended: int) -> None:
        poster = self.posters.get()  # waits only when POOL POSTs are in flight
        sent = time.time_ns()
        try:
            seq = poster.publish(topic, payload, sent)
        except (OSError, ClientFailure, ValueError) as exc:
            RUN.wire["pub"].errors += 1
            _fire("PUBLISH", f"publish {topic}", 0, 0, exc)
            return
        finally:
            self.posters.put(poster)
            self.in_flight -= 1
        if not self.measuring:
            self.warm[topic] = self.warm.get(topic, 0) + 1
        _fire("PUBLISH", f"publish {topic}", (time.time_ns() - sent) / 1e6, len(payload))
        _record_publish(index, topic, seq, intended, sent)

    def _send(self, topic: str, payload: str, ts: int) -> int:
        if not self.ws_upstream:
            return self.poster.publish(topic, payload, ts)
        ws = self.sockets.get(topic)
        if ws is None or ws.closed:
            ws = WSConn(_pub_url(self.environment), f"?topic={topic}&subscribe=0",
                        RUN.wire["pub"], 3600.0)
            self.sockets[topic] = ws
            gevent.spawn(_ws_reader, ws)
        ws.send_text(encode_publish(payload, ts).encode())
        return 0  # a WebSocket publish is not answered with its seq

    @task
    def publish(self) -> None:
        env = self.environment
        RUN.go.wait()
        rate = _opt(env, "rate")
        if rate <= 0:
            gevent.sleep(3600)
            return
        topics = max(1, _opt(env, "topics"))
        size = _opt(env, "payload-bytes")
        self.in_flight, self.warm, self.measuring = 0, {}, False
        warmup_end = _phase_bounds(env, RUN.t0_ns)[0]
        shift = 0
        for index, intended in enumerate(_schedule(env, RUN.t0_ns, rate, -1)):
            if not self.measuring and intended >= warmup_end:
                self.measuring = True
                if _paused(env):
                    shift = self._pause()
            intended += shift
            if _past_measure_end(env, intended):
                gevent.sleep(3600)  # measured publishing is over; the master quits after the drain
                return
            _sleep_until(intended)
            topic = _topic_name(env, index % topics)
            payload = make_payload(index, size)
            if not self.ws_upstream:
                self.in_flight += 1
                gevent.spawn(self._post, index, topic, payload, intended)
                continue
            sent = time.time_ns()
            try:
                seq = self._send(topic, payload, sent)
            except (OSError, ClientFailure, ValueError) as exc:
                RUN.wire["pub"].errors += 1
                _fire("PUBLISH", f"publish {topic}", 0, 0, exc)
                continue
            if not self.measuring:
                self.warm[topic] = self.warm.get(topic, 0) + 1
            _fire("PUBLISH", f"publish {topic}", (time.time_ns() - sent) / 1e6, len(payload))
            _record_publish(index, topic, seq, intended, sent)

    def _pause(self) -> int:
        """After the warm-up: its answers in, report what was published, wait for the
        master's pause (the measured schedule starts that much later)."""
        deadline = time.monotonic() + 10.0
        while self.in_flight and time.monotonic() < deadline:
            gevent.sleep(0.002)
        self.environment.runner.send_message("db_warmup_done", self.warm)
        RUN.measure_go.wait(timeout=60.0)
        return RUN.pause_ns


RUN.publisher_class = PublisherUser
