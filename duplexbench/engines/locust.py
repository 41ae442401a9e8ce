"""Run one load point on Locust and write what the native loadgen writes.

``python -m duplexbench.engines.locust SPEC.json OUT_DIR [--workers N]`` is a
drop-in for ``python -m clients.loadgen SPEC.json OUT_DIR``: the runner starts it
the same way, reads the same JSON-line events from stdout (ready, phase,
progress, done) and then the same ``counters.json`` + ``samples.parquet``, so
metrics, summary rows (``engine = "locust"``), reports and compare need not know
which engine ran.

How: the LoadSpec becomes ``--db-*`` options of ``locustfiles/duplexbench_locust.py``;
a headless Locust master (``--expect-workers N``) and N local workers run as
child processes (this process never imports locust: that would monkey-patch it
with gevent). Every worker appends its deliveries, publishes and subscriptions
to its own CSV files under ``OUT_DIR/locust/``; this module merges them. The
clock is ``time.time_ns()`` (CLOCK_REALTIME): workers may be on other machines.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["LOCUSTFILE", "main", "merge_records", "run_point"]

#: The locustfile, found from this package so any working directory will do.
LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfiles" / "duplexbench_locust.py"
CLOCK = "CLOCK_REALTIME"
#: Seconds allowed for the master, the workers and every subscriber to come up.
STARTUP_ALLOWANCE_S = 60.0


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Child side of fork: get SIGTERM when this engine dies, so no Locust process
    outlives a killed harness (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def locust_options(spec, records_dir: Path, workers: int) -> list[str]:
    """The LoadSpec as locust + ``--db-*`` options for the master."""
    users = spec.clients + (1 if spec.pattern == "fanout" else 0)
    run_time = spec.warmup_s + spec.duration_s + spec.drain_s + STARTUP_ALLOWANCE_S
    return [
        "--host", spec.sub_url.rstrip("/"),
        "-u", str(users),
        # Spawn rate: users/s over all workers; connect_concurrency bounds the burst.
        "-r", str(max(1, spec.connect_concurrency)),
        "-t", f"{int(run_time) + 1}s",
        "--stop-timeout", "0",
        "--db-transport", spec.transport,
        "--db-pattern", spec.pattern,
        "--db-clients", str(spec.clients),
        "--db-topics", str(spec.topic_count if spec.pattern != "echo" else 1),
        "--db-topic", spec.topic_prefix,
        "--db-rate", repr(float(spec.rate)),
        "--db-payload-bytes", str(spec.payload_bytes),
        "--db-upstream", spec.upstream,
        "--db-arrival", spec.arrival,
        "--db-seed", str(spec.seed),
        "--db-pub-host", spec.publish_url.rstrip("/"),
        "--db-id-stride", str(max(1, workers)),
        "--db-warmup", repr(float(spec.warmup_s)),
        "--db-duration", repr(float(spec.duration_s)),
        "--db-drain", repr(float(spec.drain_s)),
        "--db-keepalive", "1" if spec.keepalive else "0",
        "--db-max-batch", str(spec.max_batch),
        "--db-poll-timeout", repr(float(spec.poll_timeout_s)),
        "--db-out", str(records_dir),
        "--db-json-events", "1",
        "--db-connect-timeout", repr(connect_timeout(spec)),
        "--db-progress-interval", repr(float(spec.progress_interval_s)),
    ]


def connect_timeout(spec) -> float:
    """Seconds for every subscriber to connect: generous, but far below --run-time
    (``DUPLEXBENCH_CONNECT_TIMEOUT_S`` overrides it, e.g. for tests)."""
    override = os.environ.get("DUPLEXBENCH_CONNECT_TIMEOUT_S")
    if override:
        return float(override)
    return 10.0 + 2.0 * spec.clients / max(1, spec.connect_concurrency)


class _Procs:
    """The Locust master and workers; stopped (TERM, then KILL) whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []

    def start(self, command: list[str], log_path: Path, stdout_pipe: bool = False,
              cpu: int | None = None) -> subprocess.Popen:
        log = open(log_path, "w")
        self.logs.append(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        root = str(LOCUSTFILE.parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log, stderr=log,
            text=True, env=env, preexec_fn=_die_with_parent,
        )
        self.procs.append(proc)
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            try:  # its own core: on a larger machine every worker adds a core's capacity
                os.sched_setaffinity(proc.pid, {cpu})
            except OSError as exc:
                raise RuntimeError(f"loadgen_cpus: cannot pin a Locust process to core {cpu} "
                                   f"({exc})") from None
        return proc

    def stop(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


def _core(spec, k: int) -> int | None:
    """The core of Locust process k (0: the master): round-robin over loadgen_cpus,
    skipping the master's core for workers when there are cores to spare."""
    cpus = tuple(getattr(spec, "loadgen_cpus", ()) or ())
    if not cpus:
        return None
    if k and len(cpus) > 1:  # the master mostly waits: workers get the other cores first
        return cpus[1 + (k - 1) % (len(cpus) - 1)]
    return cpus[0]


def run_point(spec, out_dir: Path, workers: int = 1) -> dict:
    """Run the point on Locust; returns the master's phase info (t0, measure window)."""
    records = out_dir / "locust"
    records.mkdir(parents=True, exist_ok=True)
    for stale in glob.glob(str(records / "*-*.csv")) + glob.glob(str(records / "wire-*.json")):
        os.unlink(stale)
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    procs = _Procs()
    phases: dict = {}
    grace = 0.0  # an exception or SIGTERM: stop the children at once
    try:
        if workers > 0:
            port = _free_port()
            master_cmd = base + [
                "--headless", "--master", "--master-bind-host", "127.0.0.1",
                "--master-bind-port", str(port), "--expect-workers", str(workers),
                "--only-summary", "--csv", str(records / "stats"),
                *locust_options(spec, records, workers),
            ]
            # Master on the first load-generator core, worker k on the next ones
            # (round-robin); no loadgen_cpus: all inherit this process's affinity.
            master = procs.start(master_cmd, out_dir / "locust-master.log", stdout_pipe=True,
                                 cpu=_core(spec, 0))
            for k in range(workers):
                procs.start(base + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                            out_dir / f"locust-worker-{k}.log", cpu=_core(spec, k + 1))
        else:  # one process, no master (Locust's LocalRunner)
            master = procs.start(
                base + ["--headless", "--only-summary", "--csv", str(records / "stats"),
                        *locust_options(spec, records, 1)],
                out_dir / "locust-master.log", stdout_pipe=True)
        phases = _follow_master(master, out_dir / "locust-master.log", spec)
        grace = 10.0  # the master has quit: give the workers time to flush their files
    finally:
        procs.stop(grace)
    if master.returncode not in (0, 1):  # 1: Locust saw failures (reported in counters)
        raise RuntimeError(f"locust master exited with {master.returncode}; see {out_dir}/locust-master.log")
    return phases


def _follow_master(master: subprocess.Popen, log_path: Path, spec) -> dict:
    """Forward the master's duplexbench events to our stdout; keep the rest in its log."""
    phases: dict = {}
    limit = spec.warmup_s + spec.duration_s + spec.drain_s + STARTUP_ALLOWANCE_S + 30
    timer = threading.Timer(limit, master.terminate)  # a master that hangs must not hang us
    timer.daemon = True
    timer.start()
    assert master.stdout is not None
    with open(log_path, "a") as log:
        for line in master.stdout:
            event = None
            if line.startswith('{"event"'):
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
            if event is None:
                log.write(line)
                continue
            name = event.get("event")
            if name == "ready":
                phases["t0_ns"] = event["t0_ns"]
                _emit({"event": "ready", "clients": event.get("subscribers", 0)})
            elif name == "phase":
                phases.update({k: v for k, v in event.items() if k.endswith("_ns")})
                _emit({"event": "phase", "phase": event["phase"]})
            elif name == "progress":
                _emit(event)
            elif name == "error":
                phases.setdefault("errors", []).append(event.get("message", ""))
                _emit(event)
            elif name == "finished":
                phases["finished_ns"] = event["t_ns"]
    master.wait()
    timer.cancel()
    return phases


# ---------------------------------------------------------------------------
# Merging the workers' records into the native formats
# ---------------------------------------------------------------------------


def _read_csv(pattern: str, names: list[str], dtypes: dict):
    import pandas as pd

    frames = [pd.read_csv(path, names=names, header=None, dtype=dtypes)
              for path in sorted(glob.glob(pattern)) if os.path.getsize(path)]
    if not frames:
        return pd.DataFrame({n: pd.Series(dtype=dtypes.get(n, "int64")) for n in names})
    return pd.concat(frames, ignore_index=True)


def merge_records(spec, records: Path, phases: dict) -> tuple[dict, "object"]:
    """(counters, samples DataFrame) from the per-process files, in the native schema."""
    import numpy as np
    import pandas as pd

    from clients.core import count_late, drain_bound_s

    from ..contract import encode_envelope, make_payload

    pubs = _read_csv(str(records / "publishes-*.csv"), ["index", "topic", "seq", "intended_ns", "sent_ns"],
                     {"index": "int64", "topic": "str", "seq": "int64", "intended_ns": "int64",
                      "sent_ns": "int64"})
    subs = _read_csv(str(records / "subscribers-*.csv"), ["subscriber", "topic"],
                     {"subscriber": "int64", "topic": "str"})
    dels = _read_csv(str(records / "deliveries-*.csv"),
                     ["subscriber", "seq", "topic", "index", "sent_ns", "recv_ns"],
                     {"subscriber": "int64", "seq": "int64", "topic": "str", "index": "Int64",
                      "sent_ns": "int64", "recv_ns": "int64"})
    start = int(phases.get("measure_start_ns", 0))
    end = int(phases.get("measure_end_ns", 0))
    measured = pubs[(pubs["intended_ns"] >= start) & (pubs["intended_ns"] < end)]
    subs_per_topic = subs.groupby("topic").size()
    expected = int(measured["topic"].map(subs_per_topic).fillna(0).sum())
    # A delivery counts once per (subscriber, message) and only for measured messages.
    dels = dels.dropna(subset=["index"]).astype({"index": "int64"})
    joined = dels.merge(measured[["index", "topic", "intended_ns"]], on=["index", "topic"], how="inner")
    first = joined.drop_duplicates(["subscriber", "index"])
    delivered = int(len(first))
    samples = pd.DataFrame({
        "subscriber": first["subscriber"].to_numpy(np.int64),
        "seq": first["seq"].to_numpy(np.int64),
        "index": first["index"].to_numpy(np.int64),
        "intended_ns": first["intended_ns"].to_numpy(np.int64),
        "sent_ns": first["sent_ns"].to_numpy(np.int64),
        "recv_ns": first["recv_ns"].to_numpy(np.int64),
    })
    wire = {"sub": {}, "pub": {}}
    duplicated = 0
    for path in sorted(glob.glob(str(records / "wire-*.json"))):
        record = json.loads(Path(path).read_text())
        duplicated += int(record.get("duplicated", 0))
        for role, final in record["final"].items():
            before = record.get("at_measure_start", {}).get(role, {})
            for key, value in final.items():
                wire[role][key] = wire[role].get(key, 0) + value - before.get(key, 0)
    # Bytes of every measured envelope as the server encodes it (mean, min, max), as the
    # native engine reports them; WebSocket publishes are not answered with their seq
    # (0): estimated from the index, as the native engine does.
    if len(measured):
        lengths = [
            len(encode_envelope(int(seq) or int(index) // max(1, spec.topic_count) + 1, str(topic),
                                int(sent), make_payload(int(index), spec.payload_bytes)))
            for index, topic, seq, sent in zip(measured["index"], measured["topic"],
                                               measured["seq"], measured["sent_ns"])]
        sizes = (round(float(np.mean(lengths)), 3), int(min(lengths)), int(max(lengths)))
    else:
        sizes = (0.0, 0, 0)
    message_bytes = sizes[0]
    # The engine core's figures: reordered / duplicated by replaying each subscriber's
    # deliveries in arrival order; late against the same drain bound as native.
    replay = _replay(dels, measured)
    latencies = (samples["recv_ns"] - samples["sent_ns"]).to_numpy(np.int64)
    bound = drain_bound_s(latencies, spec.drain_max_s)
    late = count_late(samples["recv_ns"].to_numpy(np.int64), end + round(bound * 1e9)) if end else 0
    counters = {
        "complete": True,
        "reason": None,
        "engine": "locust",
        "transport": spec.transport,
        "pattern": spec.pattern,
        "clients": spec.clients,
        "published": int(len(measured)),
        "published_total": int(len(pubs)),
        "expected": expected,
        "delivered": delivered,
        "lost": max(0, expected - delivered),
        "duplicated": max(duplicated + int(len(joined) - len(first)), replay[0]),
        "reordered": replay[1],
        "late": late,
        "drain_bound_s": round(bound, 6),
        # Clock skew between machines (wall clock): counted and shown, never dropped.
        "negative_latencies": int((latencies < 0).sum()),
        # From the measure start (fanout: after every process held the warm-up, the
        # measured schedule moved by the pause) to the end of the drain.
        "bytes_window": "measure",
        "warmup_pause_ms": (round((start - int(phases["t0_ns"]) - spec.warmup_s * 1e9) / 1e6, 3)
                            if start and phases.get("t0_ns") else None),
        "wire": wire,
        "reconnects": int(wire["sub"].get("reconnects", 0)),
        "errors": int(sum(w.get("errors", 0) for w in wire.values())),
        "error_messages": _failure_messages(records),
        "message_bytes": message_bytes,
        "message_bytes_min": sizes[1],
        "message_bytes_max": sizes[2],
        # WS echo/chat with upstream = transport: messages travel up subscriber sockets.
        "messages_up_on_sub": int(len(measured)) if (
            spec.ws_upstream and spec.pattern != "fanout") else 0,
        "measure_start_ns": start,
        "measure_end_ns": end,
        "drain_end_ns": phases.get("finished_ns"),
        "clock": CLOCK,
        "samples": delivered,
        "subscribers": int(len(subs)),
        "spec": json.loads(spec.to_json()),
    }
    return counters, samples


def _replay(dels, measured) -> tuple[int, int]:
    """(duplicated, reordered) over measured messages, by the engine core's rules
    (clients.accounting.SubscriberLog): every delivery the users recorded, in order."""
    from clients.accounting import Samples, SubscriberLog

    if not len(dels) or not len(measured):
        return 0, 0
    lo, hi = int(measured["index"].min()), int(measured["index"].max()) + 1
    duplicated = reordered = 0
    for sid, group in dels.groupby("subscriber", sort=False):
        log = SubscriberLog(int(sid), 0, Samples(), lo, hi)
        log.on_raw([(b"%d" % seq, b"%d" % ts, b"%d" % index)
                    for seq, ts, index in zip(group["seq"], group["sent_ns"], group["index"])], 0)
        duplicated += log.duplicated
        reordered += log.reordered
    return duplicated, reordered


def _failure_messages(records: Path, limit: int = 20) -> list[str]:
    """Locust's failure table (lost messages, errors) as "count x type name: error" lines."""
    import csv

    path = records / "stats_failures.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [f"{r.get('Occurrences')} x {r.get('Method')} {r.get('Name')}: {r.get('Error')}"
            for r in rows[:limit]]


def _write_outputs(out_dir: Path, counters: dict, samples) -> None:
    tmp = out_dir / "samples.parquet.tmp"
    samples.to_parquet(tmp, index=False)
    os.replace(tmp, out_dir / "samples.parquet")
    tmp = out_dir / "counters.json.tmp"
    tmp.write_text(json.dumps(counters, indent=2) + "\n")
    os.replace(tmp, out_dir / "counters.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m duplexbench.engines.locust",
        description="Run one load point (SPEC.json) on Locust; write counters.json + samples.parquet.")
    parser.add_argument("spec", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--workers", type=int, default=1,
                        help="local Locust workers under one master (0: one process, no master)")
    args = parser.parse_args(argv)
    from clients.spec import LoadSpec, SpecError

    try:
        spec = LoadSpec.from_file(args.spec)
    except SpecError as exc:
        print(f"locust_engine: {exc}", file=sys.stderr)
        return 2
    if spec.transport == "tcp":  # the runner refuses it up front; a spec written by hand too
        print("locust_engine: transport 'tcp' (plain TCP lines) has no Locust user: Locust's "
              "users speak HTTP and WebSocket; run it with the native engine", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # SIGTERM from the runner: unwind through the finally that stops the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    phases = run_point(spec, args.out_dir, args.workers)
    if "measure_end_ns" not in phases:
        why = "; ".join(phases.get("errors", [])) or "see the logs"
        print(f"locust_engine: the run never reached its measurement window ({why}); logs in "
              f"{args.out_dir}/locust-*.log", file=sys.stderr)
        return 1
    counters, samples = merge_records(spec, args.out_dir / "locust", phases)
    counters["workers"] = args.workers
    _write_outputs(args.out_dir, counters, samples)
    _emit({"event": "done", "complete": True, "delivered": counters["delivered"],
           "lost": counters["lost"], "reason": None})
    return 0


if __name__ == "__main__":
    sys.exit(main())
