"""The Locust run around the users: options, run state, records, phases.

Split from the locustfile (which keeps the User classes): the ``--db-*``
options, the per-process run state (``RUN``) and delivery records, and the
phases coordinated across machines with custom messages (subscribers report
"subscribed", the master answers "go" with the start time, announces warm-up /
measure / drain as duplexbench JSON-line events and quits after the drain).
Importing it registers its Locust event listeners.
"""

from __future__ import annotations

import json
import os
import socket
import time

import gevent
from gevent.event import Event
from locust import events
from locust.runners import MasterRunner, WorkerRunner

try:  # Locust puts the locustfile's folder on sys.path
    from dbwire import Wire as _Wire
except ImportError:  # imported as a package module
    from locustfiles.dbwire import Wire as _Wire

__all__ = ["RUN", "fire", "opt", "paused", "phase_bounds", "sleep_until"]

# ---------------------------------------------------------------------------
# Options: --db-* on the command line, in the web UI, or DUPLEXBENCH_* in the
# environment (the defaults). The master forwards custom options to workers.
# ---------------------------------------------------------------------------

#: (option, env var, type, default, help)
_OPTIONS = [
    ("transport", "DUPLEXBENCH_TRANSPORT", str, "websocket",
     "subscriber transport: longpoll | sse | ndjson | websocket"),
    ("topic", "DUPLEXBENCH_TOPIC", str, "locust", "topic name (prefix when --db-topics > 1)"),
    ("topics", "DUPLEXBENCH_TOPICS", int, 1, "number of topics (echo: one per client)"),
    ("rate", "DUPLEXBENCH_RATE", float, 10.0, "messages/s published in total (open loop)"),
    ("payload-bytes", "DUPLEXBENCH_PAYLOAD_BYTES", int, 64, "payload size in bytes"),
    ("pattern", "DUPLEXBENCH_PATTERN", str, "fanout", "fanout | echo | chat"),
    ("upstream", "DUPLEXBENCH_UPSTREAM", str, "post", "post | transport (WebSocket frames)"),
    ("arrival", "DUPLEXBENCH_ARRIVAL", str, "uniform", "uniform | poisson"),
    ("seed", "DUPLEXBENCH_SEED", int, 1, "random seed (poisson arrivals)"),
    ("pub-host", "DUPLEXBENCH_PUB_HOST", str, "", "where publishers connect (default: --host)"),
    ("clients", "DUPLEXBENCH_CLIENTS", int, 0,
     "subscribers to wait for before publishing starts (0: publish at once)"),
    ("id-stride", "DUPLEXBENCH_ID_STRIDE", int, 64, "subscriber ids: n * stride + worker index"),
    ("warmup", "DUPLEXBENCH_WARMUP_S", float, 0.0, "seconds of publishing before measuring"),
    ("duration", "DUPLEXBENCH_DURATION_S", float, 0.0,
     "seconds of measured publishing, then drain and quit (0: until Locust stops)"),
    ("drain", "DUPLEXBENCH_DRAIN_S", float, 1.0, "seconds to wait for in-flight messages"),
    ("connect-timeout", "DUPLEXBENCH_CONNECT_TIMEOUT_S", float, 30.0,
     "with --db-clients: give up (and quit) when not all have subscribed by then"),
    ("keepalive", "DUPLEXBENCH_KEEPALIVE", int, 1, "long polling: 1 keep-alive, 0 close per poll"),
    ("max-batch", "DUPLEXBENCH_MAX_BATCH", int, 1000, "long polling: max envelopes per poll"),
    ("poll-timeout", "DUPLEXBENCH_POLL_TIMEOUT_S", float, 20.0, "long polling: hold time asked for"),
    ("read-timeout", "DUPLEXBENCH_READ_TIMEOUT_S", float, 60.0, "stream / WebSocket read timeout"),
    ("out", "DUPLEXBENCH_OUT", str, "", "directory for per-process delivery records (empty: none)"),
    ("json-events", "DUPLEXBENCH_JSON_EVENTS", int, 0,
     "master prints duplexbench JSON-line events to stdout"),
    ("progress-interval", "DUPLEXBENCH_PROGRESS_S", float, 1.0, "seconds between progress events"),
]


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kw) -> None:
    group = parser.add_argument_group("duplexbench", "the workload (env var DUPLEXBENCH_* = default)")
    for name, env, kind, default, text in _OPTIONS:
        value = kind(os.environ.get(env, default))
        group.add_argument(f"--db-{name}", type=kind, default=value, env_var=env, help=text)


def _opt(environment, name: str):
    """Option value from the parsed options (the master's, on a worker) or its default."""
    options = environment.parsed_options
    key = "db_" + name.replace("-", "_")
    if options is not None and hasattr(options, key):
        return getattr(options, key)
    for option, env, kind, default, _ in _OPTIONS:
        if option == name:
            return kind(os.environ.get(env, default))
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Run state: one per process. Phases are coordinated by custom messages so they
# work across machines: subscribers report "subscribed", the master answers
# "go" with the start time t0 (CLOCK_REALTIME) once all are in.
# ---------------------------------------------------------------------------


class _Run:
    """What every user of this process shares: start signal, ids, records, counters."""

    def __init__(self) -> None:
        self.go = Event()  # set when publishing may start
        self.t0_ns = 0  # when publishing starts (warm-up begins)
        self.subscribed = 0  # master: subscribers that reported in
        self.next_local_id = 0  # per-process counter for subscriber ids
        self.wire = {"sub": _Wire(), "pub": _Wire()}
        self.duplicated = 0  # deliveries of a seq a subscriber already held
        self.negative = 0  # deliveries received "before" their ts (clock skew)
        self.window: dict[str, dict] = {}  # wire snapshots at measure start / end
        self.recorder: _Recorder | None = None
        self.all_classes: list = []  # every User class of this file (web UI re-picks)
        #: Set by the locustfile: transport -> subscriber User class, and the publisher.
        self.subscriber_classes: dict = {}
        self.publisher_class = None
        self.environment = None
        # The pause between warm-up and measurement (fanout runs, as the native engine):
        # the publisher stops after the warm-up, every process waits until its subscribers
        # hold the warm-up, opens its byte window, and the measured schedule starts late
        # by ``pause_ns`` (so the window holds measured messages only).
        self.pause_ns = 0
        self.measure_go = Event()  # workers: the pause is decided
        self.warmup_done = Event()  # master: the publisher finished the warm-up
        self.warmup_counts: dict[str, int] = {}  # topic -> successful warm-up publishes
        self.settled = 0  # master: processes whose subscribers hold the warm-up
        self.local_subscribers: list = []  # this process's subscriber users

    def new_subscriber_id(self) -> int:
        env = self.environment
        index = max(getattr(env.runner, "worker_index", 0), 0)
        sid = self.next_local_id * _opt(env, "id-stride") + index
        self.next_local_id += 1
        return sid


class _Recorder:
    """Buffered CSV files in --db-out, one set per process (so workers never share a file)."""

    FLUSH_LINES = 2000

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        tag = f"{socket.gethostname()}-{os.getpid()}"
        self.directory, self.tag = directory, tag
        self._files = {
            kind: open(os.path.join(directory, f"{kind}-{tag}.csv"), "a", buffering=1 << 16)
            for kind in ("deliveries", "publishes", "subscribers")
        }
        self._lines: dict[str, list[str]] = {kind: [] for kind in self._files}

    def add(self, kind: str, line: str) -> None:
        lines = self._lines[kind]
        lines.append(line)
        if len(lines) >= self.FLUSH_LINES:
            self.flush(kind)

    def flush(self, kind: str | None = None) -> None:
        for name in [kind] if kind else list(self._files):
            lines, self._lines[name] = self._lines[name], []
            if lines:
                self._files[name].write("".join(lines))
            self._files[name].flush()

    def write_wire(self, run: "_Run") -> None:
        # The window ends with the drain (as the native engine's), not at test stop,
        # which also counts the close handshakes; live counts when the run was cut short.
        final = run.window.get("at_drain_end") or {role: wire.as_dict()
                                                    for role, wire in run.wire.items()}
        path = os.path.join(self.directory, f"wire-{self.tag}.json")
        with open(path + ".tmp", "w") as handle:
            json.dump({"final": final, "duplicated": run.duplicated, "negative": run.negative,
                       **run.window}, handle)
        os.replace(path + ".tmp", path)


RUN = _Run()


def _emit(event: dict) -> None:
    """A duplexbench JSON-line event on the master's stdout (locust_engine forwards it)."""
    if _opt(RUN.environment, "json-events"):
        print(json.dumps(event, separators=(",", ":")), flush=True)


@events.init.add_listener
def _on_init(environment, runner, web_ui=None, **_kw) -> None:
    RUN.environment = environment
    is_worker = isinstance(runner, WorkerRunner)
    if not is_worker:
        RUN.all_classes = list(environment.user_classes)
        _select_user_classes(environment)
        runner.register_message("db_subscribed", _on_subscribed)
        if web_ui is not None:
            web_ui.app.before_request(_web_swarm_hook)
        runner.register_message("db_warmup_done", _on_warmup_done)
        runner.register_message("db_settled", _on_settled)
    if not isinstance(runner, MasterRunner):
        runner.register_message("db_go", _on_go)
        runner.register_message("db_owed", _on_owed)
        runner.register_message("db_measure", _on_measure)


def _select_user_classes(environment, transport: str | None = None,
                         pattern: str | None = None) -> None:
    """Run only the chosen transport's subscriber (and the publisher for fanout), unless
    the user named classes on the command line; the web UI's class picker still works."""
    options = environment.parsed_options
    if options is not None and (getattr(options, "user_classes", None) or
                                getattr(options, "class_picker", False)):
        return
    transport = transport or _opt(environment, "transport")
    classes = RUN.subscriber_classes
    if transport not in classes:
        raise ValueError(f"--db-transport: expected one of {', '.join(classes)}, "
                         f"got {transport!r}")
    wanted = {classes[transport].__name__}
    if (pattern or _opt(environment, "pattern")) == "fanout":
        wanted.add(RUN.publisher_class.__name__)
    environment.user_classes[:] = [c for c in RUN.all_classes if c.__name__ in wanted]


def _web_swarm_hook() -> None:
    """Web UI: a new test may name another transport in the form; pick the classes
    before Locust builds its user dispatcher from them."""
    from flask import request

    if request.method != "POST" or not request.path.endswith("/swarm"):
        return
    environment = RUN.environment
    runner = environment.runner
    if runner is None or runner.state in ("running", "spawning"):
        return  # a running test keeps its classes (Locust only changes the user count)
    _select_user_classes(environment, request.form.get("db_transport") or None,
                         request.form.get("db_pattern") or None)
    runner._users_dispatcher = None  # rebuilt by start() with the classes chosen now


def _on_subscribed(environment, msg, **_kw) -> None:
    RUN.subscribed += int(msg.data or 1)
    if RUN.go.is_set() or RUN.t0_ns or RUN.subscribed < _opt(environment, "clients"):
        return
    t0 = time.time_ns() + 200_000_000  # a moment for "go" to reach every worker
    RUN.t0_ns = t0
    environment.runner.send_message("db_go", {"t0_ns": t0})
    gevent.spawn(_conduct, environment, t0)


def _on_go(environment, msg, **_kw) -> None:
    RUN.t0_ns = int(msg.data["t0_ns"])
    RUN.go.set()
    if not paused(environment):  # else the window opens once the warm-up is held
        gevent.spawn(_snapshot_window, environment, RUN.t0_ns)


def paused(environment) -> bool:
    """Whether this run pauses between warm-up and measurement (fanout, phased)."""
    return (_opt(environment, "pattern") == "fanout" and _opt(environment, "clients") > 0
            and _opt(environment, "warmup") > 0 and _opt(environment, "duration") > 0)


def _on_warmup_done(environment, msg, **_kw) -> None:
    RUN.warmup_counts = dict(msg.data or {})
    RUN.warmup_done.set()


def _on_settled(environment, msg, **_kw) -> None:
    RUN.settled += 1


def _on_owed(environment, msg, **_kw) -> None:
    gevent.spawn(_settle, environment, dict(msg.data or {}))


def _on_measure(environment, msg, **_kw) -> None:
    RUN.pause_ns = int(msg.data["pause_ns"])
    RUN.measure_go.set()


def _settle(environment, owed: dict[str, int]) -> None:
    """Wait (bounded) until this process's subscribers hold every warm-up message of
    their topic, then open the byte window and tell the master."""
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        if all(s.cursor is not None and s.cursor >= owed.get(s.topic, 0)
               for s in RUN.local_subscribers):
            break
        gevent.sleep(0.002)
    RUN.window["at_measure_start"] = {r: w.as_dict() for r, w in RUN.wire.items()}
    environment.runner.send_message("db_settled", 1)
    if RUN.measure_go.wait(timeout=60.0):
        _sleep_until(_phase_bounds(environment, RUN.t0_ns)[2])
        RUN.window["at_drain_end"] = {r: w.as_dict() for r, w in RUN.wire.items()}


#: How long a process waits for its subscribers to hold the warm-up.
SETTLE_MAX_S = 2.0


def _sleep_until(deadline_ns: int) -> None:
    delay = (deadline_ns - time.time_ns()) / 1e9
    if delay > 0:
        gevent.sleep(delay)


def _phase_bounds(environment, t0: int) -> tuple[int, int, int]:
    """(measure start, measure end, drain end) in CLOCK_REALTIME ns (after the pause
    once it is decided)."""
    start = t0 + int(_opt(environment, "warmup") * 1e9) + RUN.pause_ns
    end = start + int(_opt(environment, "duration") * 1e9)
    return start, end, end + int(_opt(environment, "drain") * 1e9)


def _conduct(environment, t0: int) -> None:
    """Master (or local runner): announce phases, report progress, quit after the drain."""
    start, end, drain_end = _phase_bounds(environment, t0)
    _emit({"event": "ready", "subscribers": RUN.subscribed, "t0_ns": t0})
    _sleep_until(t0)
    _emit({"event": "phase", "phase": "warmup", "t_ns": t0})
    progress = gevent.spawn(_progress, environment)
    _sleep_until(start)
    if paused(environment):
        _pause(environment, start)
        start, end, drain_end = _phase_bounds(environment, t0)
    _emit({"event": "phase", "phase": "measure", "t_ns": start, "measure_start_ns": start})
    if _opt(environment, "duration") <= 0:
        return  # open-ended: Locust's --run-time or the user stops the test
    _sleep_until(end)
    _emit({"event": "phase", "phase": "drain", "t_ns": end, "measure_end_ns": end})
    _sleep_until(drain_end)
    progress.kill()
    _emit({"event": "finished", "t_ns": time.time_ns()})
    environment.runner.quit()


def _pause(environment, start: int) -> None:
    """Master: warm-up published -> every process holds it -> measurement, late by the pause."""
    runner = environment.runner
    RUN.warmup_done.wait(timeout=30.0)
    RUN.settled = 0
    runner.send_message("db_owed", RUN.warmup_counts)
    processes = runner.worker_count if isinstance(runner, MasterRunner) else 1
    deadline = time.monotonic() + SETTLE_MAX_S + 5.0
    while RUN.settled < processes and time.monotonic() < deadline:
        gevent.sleep(0.002)
    pause = max(0, time.time_ns() - start)
    RUN.pause_ns = pause
    runner.send_message("db_measure", {"pause_ns": pause})


def _connect_watchdog(environment) -> None:
    """Master: a run whose subscribers cannot all connect ends with an error event
    instead of waiting for Locust's --run-time."""
    gevent.sleep(_opt(environment, "connect-timeout"))
    if RUN.t0_ns:
        return
    _emit({"event": "error", "message": f"only {RUN.subscribed} of {_opt(environment, 'clients')} "
           f"subscribers connected within {_opt(environment, 'connect-timeout'):g} s"})
    environment.runner.quit()


def _progress(environment) -> None:
    interval = max(0.2, _opt(environment, "progress-interval"))
    while True:
        gevent.sleep(interval)
        sent = delivered = 0
        for (name, method), entry in environment.stats.entries.items():
            if method == "PUBLISH":
                sent += entry.num_requests
            else:
                delivered += entry.num_requests
        _emit({"event": "progress", "sent": sent, "delivered": delivered})


def _snapshot_window(environment, t0: int) -> None:
    """Wire counters at measure start; the window reported is final minus these
    (handshakes and warm-up traffic stay out of the per-message costs)."""
    start = _phase_bounds(environment, t0)[0]
    _sleep_until(start)
    RUN.window["at_measure_start"] = {r: w.as_dict() for r, w in RUN.wire.items()}


@events.test_start.add_listener
def _on_test_start(environment, **_kw) -> None:
    if not isinstance(environment.runner, WorkerRunner) and _opt(environment, "clients") > 0:
        gevent.spawn(_connect_watchdog, environment)
    out = _opt(environment, "out")
    if out and RUN.recorder is None and not isinstance(environment.runner, MasterRunner):
        RUN.recorder = _Recorder(out)
    # Every test (the web UI can start several) begins its own schedule.
    RUN.go.clear()
    RUN.t0_ns = RUN.subscribed = 0
    RUN.pause_ns = RUN.settled = 0
    RUN.window = {}
    RUN.measure_go.clear()
    RUN.warmup_done.clear()
    if _opt(environment, "clients") <= 0:
        RUN.t0_ns = time.time_ns()  # interactive use: publish as soon as users run
        RUN.go.set()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kw) -> None:
    if RUN.recorder is not None:
        RUN.recorder.flush()
        RUN.recorder.write_wire(RUN)


@events.quitting.add_listener
def _on_quitting(environment, **_kw) -> None:
    _on_test_stop(environment)


def _fire(request_type: str, name: str, ms: float, length: int, exc: Exception | None = None):
    RUN.environment.events.request.fire(
        request_type=request_type, name=name, response_time=ms,
        response_length=length, exception=exc, context={},
    )


# Public names for the locustfile.
opt, fire, sleep_until, phase_bounds = _opt, _fire, _sleep_until, _phase_bounds
