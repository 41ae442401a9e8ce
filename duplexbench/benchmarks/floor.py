"""``python -m duplexbench engines --floor`` (``make floor``): the native engine beside the kernel's floor, per transport.

Why: "the load generator costs X of the server" says nothing until it is set
against the least any client with the same wire behaviour can cost.
tools/floor/floor.c is that least: a C reader that only ``read()``s every
delivery (one read, so one ACK, per delivered message), long polling included
(it re-polls at once with the native engine's request bytes). This module
runs it and the native engine (``python -m clients.loadgen``) back to back at
the same point (``make bench``'s 50-subscriber point of scenarios/quick.toml:
200 msg/s of 64 B; server on the first core, everything else on the second),
each against a fresh pinned server and **the same publisher** (the engine's
own process, ``clients.pubproc``: the floor run drives it over its JSON-line
protocol), and prints, per transport and repeat, client ÷ server for both and
native ÷ floor. The publisher's CPU is measured apart (it is the same program
in both runs), so native ÷ floor compares the subscriber side only; the
figure with the publisher included is printed beside it.

CPU is schedstat nanoseconds of every thread (``procs.schedstat_ns``) over the
measurement window: from the end of the warm-up to the last measured publish
answered. The machine is noisy, so each comparison runs ``--repeats`` times
(floor and native alternate which goes first) and the spread is reported.
Output: ``results/floor-<time>/floor.json`` and ``floor.md``.
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from clients.reader import loop_in_c
from clients.schedule import make_schedule
from clients.spec import LoadSpec

from .. import procs
from .floor_report import TARGET, markdown, summarize, tally, tally_markdown, verdict
from ..measure.results import atomic_write_json, atomic_write_text
from ..scenario import ScenarioError, load_scenario
from ..procs.server import ServerError, ServerProcess

__all__ = ["FloorError", "GAP_US", "GAP_US_BY_TRANSPORT", "TARGET", "TRANSPORTS", "build_floor", "gap_for",
           "main", "run_floor", "run_native"]

TRANSPORTS = ("longpoll", "sse", "ndjson", "websocket")
#: floor.c's MODE per transport.
FLOOR_MODES = {"longpoll": "longpoll", "sse": "sse", "ndjson": "ndjson", "websocket": "ws"}
#: floor.c sleeps this long before each epoll_wait: it then wakes about once per published
#: message, as the engine does, and still reads once per delivery at 200 msg/s.
GAP_US = 2000
#: ... except for long polling, whose floor (the issue's "a C client that re-polls at once")
#: reads each answer as soon as it is ready: a late read is a late re-poll, so a slower
#: client than the engine, with the same wire (one poll per delivery) but less work per wake.
GAP_US_BY_TRANSPORT = {"longpoll": 0}


def gap_for(transport: str, gap_us: int | None) -> int:
    """The floor reader's gap for ``transport``: ``--gap-us`` when given, else its own."""
    return gap_us if gap_us is not None else GAP_US_BY_TRANSPORT.get(transport, GAP_US)
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tools" / "floor" / "floor.c"
STEP_TIMEOUT_S = 60.0


class FloorError(RuntimeError):
    """A run could not be made; the message says which and why."""


def build_floor(dest_dir: Path) -> Path:
    """Compile tools/floor/floor.c into ``dest_dir``; returns the binary."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise FloorError("no C compiler (gcc) found: the floor reader is C; install it with "
                         "`apt-get install gcc`")
    dest_dir.mkdir(parents=True, exist_ok=True)
    binary = dest_dir / "floor"
    done = subprocess.run([compiler, "-O2", "-o", str(binary), str(SOURCE)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise FloorError(f"building {SOURCE} failed:\n{done.stderr[-2000:]}")
    return binary


class _Lines:
    """A child's stdout lines, read by a thread: every wait on them has a timeout."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def next(self, what: str, timeout: float = STEP_TIMEOUT_S) -> str:
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise FloorError(f"no {what} within {timeout:.0f} s") from None
        if line is None:
            raise FloorError(f"the process exited before {what}")
        return line

    def event(self, name: str, timeout: float = STEP_TIMEOUT_S) -> dict:
        """The next JSON line whose ``event`` is ``name`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(repr(name), max(0.1, deadline - time.monotonic()))
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == "failed":
                raise FloorError(message.get("message", "failed"))
            if message.get("event") == name:
                return message


class _Cpu:
    """schedstat ns of named processes; ``window()`` = seconds between two marks."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.seen: dict[str, dict[int, int]] = {name: {} for name in pids}
        self.marks: list[dict[str, int]] = []

    def mark(self) -> None:
        self.marks.append({name: procs.schedstat_ns(pid, self.seen[name]) or 0
                           for name, pid in self.pids.items()})

    def window(self) -> dict[str, float]:
        first, last = self.marks[0], self.marks[-1]
        return {name: (last[name] - first[name]) / 1e9 for name in self.pids}


def _spec(scenario, point, url: str, cpu: int | None, prefix: str) -> LoadSpec:
    return LoadSpec(
        transport=point.transport, sub_url=url, clients=point.clients, topics=scenario.topics,
        topic_prefix=prefix, rate=point.rate, payload_bytes=point.payload_bytes,
        arrival=scenario.arrival, seed=scenario.seed, warmup_s=scenario.warmup_s,
        duration_s=scenario.duration_s, drain_s=scenario.drain_s, keepalive=point.keepalive,
        max_batch=scenario.longpoll.max_batch, publisher_cpu=cpu,
    )


def run_floor(binary: Path, spec: LoadSpec, server_pid: int, cpu: int | None, out: Path,
              gap_us: int = GAP_US) -> dict:
    """The floor reader and the engine's publisher process on ``spec``'s point."""
    out.mkdir(parents=True, exist_ok=True)
    url = urlsplit(spec.sub_url)
    if spec.topics != 1:
        raise FloorError("the floor reader subscribes to one topic: expected topics = 1")
    longest = spec.warmup_s + spec.duration_s + spec.drain_s + STEP_TIMEOUT_S
    err = open(out / "floor.stderr", "w")
    reader = procs.spawn([str(binary), url.hostname, str(url.port), spec.topic(0),
                          str(spec.clients), f"{longest:g}", FLOOR_MODES[spec.transport],
                          str(gap_us)], name="floor-reader", cpu=cpu, stdout=subprocess.PIPE,
                         stderr=err)
    pub = None
    try:
        lines = _Lines(reader.popen.stdout)
        if lines.next("the floor reader's 'ready'").strip() != "ready":
            raise FloorError("the floor reader did not start; see floor.stderr")
        if spec.transport == "longpoll":
            time.sleep(0.2)  # as the engine: a poll is "subscribed" once the server holds it
        (out / "spec.json").write_text(spec.to_json())
        pub = _start_publisher(out, cpu)
        pub_lines = _Lines(pub.popen.stdout)
        pub_lines.event("ready")
        cpu_of = _Cpu({"server": server_pid, "client": reader.pid, "publisher": pub.pid})
        start_ns = time.monotonic_ns() + 50_000_000
        _tell(pub, cmd="start", start_ns=start_ns)
        pub_lines.event("warmup_done", spec.warmup_s + STEP_TIMEOUT_S)
        pause_ns = max(0, time.monotonic_ns() - start_ns - round(spec.warmup_s * 1e9))
        cpu_of.mark()
        _tell(pub, cmd="measure", pause_ns=pause_ns)
        sent = pub_lines.event("sent", spec.duration_s + STEP_TIMEOUT_S)
        cpu_of.mark()
        time.sleep(min(spec.drain_s, 0.5))  # the last deliveries are on their way
        _tell(pub, cmd="end")
        pub_lines.event("done")
        reader.stop(timeout=5.0)  # SIGTERM: it prints its counts and exits
        counts = json.loads(lines.next("the floor reader's counts"))
    finally:
        if pub is not None:
            pub.stop(timeout=3.0)
        reader.stop(timeout=3.0)
        err.close()
    with np.load(out / "published.npz") as data:
        ok = data["ok"]
    first = make_schedule(spec.rate, spec.warmup_s, spec.duration_s, spec.arrival,
                          spec.seed).first_measured
    expected_all = int(ok.sum()) * spec.clients
    return _row("floor", spec, cpu_of.window(), measured=int(ok[first:].sum()), extra={
        "deliveries": counts["deliveries"], "lost": max(0, expected_all - counts["deliveries"]),
        "errors": counts["errors"] + sent["errors"],
        "reads_per_delivery": round(counts["reads"] / max(1, counts["deliveries"]), 3),
        "polls_per_delivery": (round(counts["polls"] / max(1, counts["deliveries"]), 3)
                               if spec.transport == "longpoll" else None),
        "segments_up_per_msg": None, "gap_us": gap_us})


def _start_publisher(out: Path, cpu: int | None) -> procs.Child:
    """clients.pubproc with pipes both ways (procs.spawn gives it no stdin), tracked, pinned."""
    popen = subprocess.Popen(
        procs.dying_with_parent([sys.executable, "-m", "clients.pubproc", str(out / "spec.json"),
                                 str(out / "published.npz")]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        cwd=ROOT)
    procs.track(popen.pid, "publisher")
    procs.pin(popen.pid, cpu)
    return procs.Child(popen, "publisher")


def _tell(child: procs.Child, **command) -> None:
    assert child.popen.stdin is not None
    child.popen.stdin.write(json.dumps(command) + "\n")
    child.popen.stdin.flush()


def run_native(spec: LoadSpec, server_pid: int, cpu: int | None, out: Path) -> dict:
    """``python -m clients.loadgen`` on ``spec``, CPU taken at its measure / drain events."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(spec.to_json())
    err = open(out / "stderr.log", "w")
    child = procs.spawn([sys.executable, "-m", "clients.loadgen", str(out / "spec.json"),
                         str(out / "out")], name="loadgen-native", cpu=cpu,
                        stdout=subprocess.PIPE, stderr=err)
    try:
        lines = _Lines(child.popen.stdout)
        ready = lines.event("ready")
        loadgen_pid, publisher_pid = ready["procs"][0], ready["procs"][1]
        cpu_of = _Cpu({"server": server_pid, "client": loadgen_pid, "publisher": publisher_pid})
        for phase in ("measure", "drain"):
            while lines.event("phase", spec.warmup_s + spec.duration_s + STEP_TIMEOUT_S).get(
                    "phase") != phase:
                pass
            cpu_of.mark()
        code = child.wait(STEP_TIMEOUT_S)
    finally:
        child.stop(timeout=3.0)
        err.close()
    if code != 0:
        raise FloorError(f"the native engine exited with {code}: "
                         f"{(out / 'stderr.log').read_text()[-1500:]}")
    counters = json.loads((out / "out" / "counters.json").read_text())
    delivered = int(counters["delivered"])
    segs = counters.get("tcp", {}).get("sub", {}).get("segs_out")
    reads = counters.get("reader", {}).get("reads")  # the receive loop's (clients/reader.py)
    return _row("native", spec, cpu_of.window(), measured=int(counters["published"]), extra={
        "deliveries": delivered, "lost": int(counters["lost"]), "errors": int(counters["errors"]),
        "reads_per_delivery": round(reads / delivered, 3) if reads and delivered else None,
        "polls_per_delivery": None,
        "segments_up_per_msg": round(segs / delivered, 4) if segs and delivered else None,
        "gap_us": None})


def _row(client: str, spec: LoadSpec, cpu: dict[str, float], measured: int, extra: dict) -> dict:
    server, sub, pub = cpu["server"], cpu["client"], cpu["publisher"]
    in_window = measured * spec.clients
    return {
        "transport": spec.transport, "client": client, "measured_messages": measured,
        "server_cpu_s": round(server, 4), "client_cpu_s": round(sub, 4),
        "publisher_cpu_s": round(pub, 4),
        "client_per_server": round(sub / server, 4) if server else None,
        "with_publisher_per_server": round((sub + pub) / server, 4) if server else None,
        "client_us_per_delivery": round(1e6 * sub / in_window, 3) if in_window else None,
        "publisher_us_per_message": round(1e6 * pub / measured, 2) if measured else None,
        **extra,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench engines --floor",
        description="Per transport, the kernel's floor (tools/floor/floor.c) and the native engine "
                    "at the same point, back to back, with the same publisher: client CPU / "
                    "server CPU for both and native / floor.")
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "quick.toml"),
                        help="the point: the scenario's most-clients point (default quick.toml)")
    parser.add_argument("--transports", help="comma-separated (default: the scenario's, of "
                        + ", ".join(TRANSPORTS) + ")")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs of each pair (default 5: the median and its rerun estimate)")
    parser.add_argument("--duration", type=float, default=8.0, metavar="S",
                        help="measurement seconds per run (default 8)")
    parser.add_argument("--gap-us", type=int, default=None,
                        help=f"floor reader's sleep before each epoll_wait (default {GAP_US}; "
                             "0 for long polling, which re-polls at once)")
    parser.add_argument("--out", type=Path, help="results directory (default results/floor-<time>)")
    parser.add_argument("--tally", nargs="+", type=Path, metavar="RESULT",
                        help="run nothing: over these earlier results (floor.json or its "
                             "directory), how many invocations met the target per transport "
                             "and for every transport (the verdict's measured rate of holding)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tally:
        try:
            print(tally_markdown(tally(args.tally)), end="")
        except ValueError as exc:
            print(f"engines --floor --tally: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.repeats < 1:
        print("engines --floor: --repeats must be at least 1", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario).with_overrides(duration_s=args.duration)
    except ScenarioError as exc:
        print(f"engines --floor: {exc}", file=sys.stderr)
        return 2
    transports = ([t.strip() for t in args.transports.split(",") if t.strip()] if args.transports
                  else [t for t in scenario.transports if t in TRANSPORTS])
    if unknown := set(transports) - set(TRANSPORTS):
        print(f"engines --floor: unknown transport(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = args.out or Path("results") / f"floor-{stamp}"
    try:
        binary = build_floor(out / "bin")
    except FloorError as exc:
        print(f"engines --floor: {exc}", file=sys.stderr)
        return 2
    plan = procs.plan_affinity()
    procs.raise_nofile_limit()
    points = {p.transport: p for p in sorted(scenario.points(), key=lambda p: (p.clients, p.rate))
              if p.repeat == 0 and p.keepalive}
    missing = [t for t in transports if t not in points]
    if missing:
        print(f"engines --floor: {args.scenario} has no {', '.join(missing)} point", file=sys.stderr)
        return 2
    p0 = points[transports[0]]
    read_loop = "C (clients/readloop.c)" if loop_in_c() else "Python (clients/reader.py)"
    head = (f"engines --floor: {scenario.name}, {p0.clients} subscribers, {p0.rate:g} msg/s, "
            f"{p0.payload_bytes} B, {scenario.duration_s:g} s measured per run, {args.repeats} "
            f"repeats; server CPU {plan.server}, everything else CPU {plan.loadgen}; floor gap "
            + ", ".join(f"{t} {gap_for(t, args.gap_us)} us" for t in transports)
            + f"; native read loop in {read_loop}")
    print(head, flush=True)
    rows: list[dict] = []
    try:
        for repeat in range(args.repeats):
            for transport in transports:
                order = ("floor", "native") if repeat % 2 == 0 else ("native", "floor")
                for client in order:
                    rows.append(_one(client, transport, repeat, scenario, points[transport], plan,
                                     binary, out, stamp, gap_for(transport, args.gap_us)))
                    r = rows[-1]
                    print(f"  {transport:8s} {client:6s} #{repeat + 1}: client/server "
                          f"{r['client_per_server']:.3f} (client {r['client_cpu_s']:.3f} s, server "
                          f"{r['server_cpu_s']:.3f} s, publisher {r['publisher_cpu_s']:.3f} s), "
                          f"lost {r['lost']}", flush=True)
    except (FloorError, ServerError) as exc:
        print(f"engines --floor: {exc}", file=sys.stderr)
        return 1
    summary = summarize(rows)
    text = markdown(summary, rows, head)
    print()
    print(text.split("\n\nMedian")[0])
    atomic_write_json(out / "floor.json", {
        "schema_version": 1, "scenario": scenario.name, "target": TARGET,
        "gap_us": {t: gap_for(t, args.gap_us) for t in transports},
        "native_read_loop": "c" if loop_in_c() else "python",
        "point": {"clients": p0.clients, "rate": p0.rate, "payload_bytes": p0.payload_bytes,
                  "duration_s": scenario.duration_s, "warmup_s": scenario.warmup_s},
        "affinity": plan.to_meta(), "repeats": args.repeats,
        "verdict": verdict(summary),
        "summary": summary, "rows": rows})
    atomic_write_text(out / "floor.md", text)
    print(f"results: {out}")
    if any(r["lost"] or r["errors"] for r in rows):
        print("warning: messages were lost or errors occurred; see the rows", file=sys.stderr)
        return 1
    return 0


def _one(client: str, transport: str, repeat: int, scenario, point, plan, binary: Path,
         out: Path, stamp: str, gap_us: int) -> dict:
    """One run on a fresh pinned server: each run's server CPU is its own."""
    with ServerProcess(transport="all", args=scenario.server.to_args(), cpu=plan.server) as server:
        spec = _spec(scenario, point, server.url, plan.loadgen,
                     f"floor-{client}-{stamp[-6:]}-{repeat}")
        where = out / f"{transport}-{client}-{repeat + 1}"
        if client == "floor":
            row = run_floor(binary, spec, server.pid, plan.loadgen, where, gap_us)
        else:
            row = run_native(spec, server.pid, plan.loadgen, where)
    return {"repeat": repeat + 1, **row}


if __name__ == "__main__":
    sys.exit(main())
