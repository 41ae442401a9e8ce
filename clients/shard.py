"""A sharded point: subscribers spread over ``loadgen_procs`` pinned processes.

Why: one Python process receives only so many messages per second. With
``loadgen_procs = N`` the conductor (``python -m clients.loadgen``, still the
one entry point) runs no subscriber itself: it starts the publisher process
and N shard processes (``python -m clients.shard SPEC OUT K N``, subscribers
``c`` with ``c % N == K``), pinned round-robin to ``loadgen_cpus``, drives the
phases and merges what the shards saw into the same ``counters.json`` and
``samples.parquet`` a single process writes.

A shard is a :class:`clients.point.LoadGen` restricted to its members and
driven by commands, one JSON line each way over stdin / stdout:
``settle`` (the warm-up owed per topic) -> ``settled``; ``snapshot`` ->
kernel byte counts and client counters; ``latency`` -> its measured
latencies (for the drain bound); ``drain`` (measured publishes per topic, a
deadline) -> ``drained`` with its end-of-window snapshot; ``write`` -> its
samples in a .npz and its per-subscriber duplicate / reorder counts;
``close``.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
from array import array
from pathlib import Path

import numpy as np

from .base import ClientError
from .point import LoadGen, emit
from .process import loop_factory, raise_nofile_limit, tune_process
from .spec import LoadSpec

__all__ = ["ShardedLoadGen", "main"]

SHARD_TIMEOUT_S = 60.0


class _Shard:
    """The conductor's end of one shard process."""

    def __init__(self, k: int, proc: asyncio.subprocess.Process, out: Path) -> None:
        self.k, self.proc, self.out = k, proc, out

    def tell(self, **command) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())

    async def expect(self, event: str, timeout: float = SHARD_TIMEOUT_S) -> dict:
        assert self.proc.stdout is not None
        while True:
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            except asyncio.TimeoutError:
                raise ClientError(f"shard {self.k}: no {event!r} within {timeout:.0f} s") from None
            if not line:
                raise ClientError(f"shard {self.k} exited before {event!r}; see stderr")
            message = json.loads(line)
            kind = message.get("event")
            if kind == "failed":
                raise ClientError(f"shard {self.k}: {message['message']}")
            if kind == "error":  # a subscriber's recovered problem: pass it on
                emit("error", message=f"shard {self.k}: {message.get('message')}")
                continue
            if kind == event:
                return message


class ShardedLoadGen(LoadGen):
    """The conductor of a sharded point (no subscriber of its own)."""

    is_sharded = True

    def __init__(self, spec: LoadSpec, out_dir: Path) -> None:
        super().__init__(spec, out_dir)
        self.raws = []  # the shards keep the reads
        self.shards: list[_Shard] = []
        self._last: dict | None = None
        self.shard_nodelay: list = []
        self._faults: list[tuple] = []

    def fault_stats(self) -> list[tuple[int, int, int, int, bool]]:
        return self._faults

    @property
    def procs(self) -> list[int]:
        return super().procs + [s.proc.pid for s in self.shards]

    async def _connect_subscribers(self) -> None:
        spec = self.spec
        cpus = spec.loadgen_cpus
        for k in range(spec.loadgen_procs):
            out = self.out_dir / f"shard-{k}"
            out.mkdir(parents=True, exist_ok=True)
            spec_path = out / "spec.json"
            spec_path.write_text(spec.to_json())
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "clients.shard", str(spec_path), str(out), str(k),
                str(spec.loadgen_procs), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, limit=1 << 24)
            if cpus and hasattr(os, "sched_setaffinity"):
                try:
                    os.sched_setaffinity(proc.pid, {cpus[k % len(cpus)]})
                except OSError as exc:
                    raise ClientError(f"loadgen_cpus: cannot pin shard {k} to core "
                                      f"{cpus[k % len(cpus)]} ({exc})") from None
            self.shards.append(_Shard(k, proc, out))
        await asyncio.gather(*(s.expect("ready", SHARD_TIMEOUT_S + spec.clients / 50)
                               for s in self.shards))

    async def _settle_warmup(self, owed: list[int]) -> None:
        for s in self.shards:
            s.tell(cmd="settle", owed=owed)
        notes = [m.get("note") for m in await asyncio.gather(*(s.expect("settled")
                                                               for s in self.shards))]
        notes = [n for n in notes if n]
        if notes:
            self.bytes_window_note = notes[0]

    async def snapshot(self) -> dict:
        for s in self.shards:
            s.tell(cmd="snapshot")
        parts = await asyncio.gather(*(s.expect("snapshot") for s in self.shards))
        self._last = _merge(parts, self.sent)
        return self._last

    def last_snapshot(self) -> dict:
        return self._last or _merge([], self.sent)

    async def latencies_ns(self) -> np.ndarray:
        for s in self.shards:
            s.tell(cmd="latency")
        parts = await asyncio.gather(*(s.expect("latency") for s in self.shards))
        return np.asarray([x for m in parts for x in m["p99_ns"]], dtype=np.int64)

    async def wait_delivered(self, deadline_ns: int) -> None:
        first, n = self.first, len(self.schedule)
        ok = self.published_ok[first:n]
        per_topic = np.bincount(self.topic_of[first:n][ok], minlength=len(self.plan.topics))
        for s in self.shards:
            s.tell(cmd="drain", per_topic=per_topic.tolist(), deadline_ns=deadline_ns)
        await asyncio.gather(*(s.expect("drained", SHARD_TIMEOUT_S + self.spec.drain_max_s)
                               for s in self.shards))

    def flush(self) -> None:
        pass  # the shards account their own reads

    def progress(self) -> dict:
        return {"phase": self.phase, "sent": self.sent, "delivered": self.samples.delivered,
                "expected": self.expected_so_far, "lost_so_far": 0}

    async def collect(self) -> None:
        """The shards' samples and per-subscriber counts, merged into this process."""
        if getattr(self, "_collected", False):
            return
        self._collected = True
        alive = [s for s in self.shards if s.proc.returncode is None]
        for s in alive:
            s.tell(cmd="write")
        try:
            parts = await asyncio.gather(*(s.expect("written") for s in alive))
        except ClientError as exc:
            self.note_error(str(exc))
            return
        samples = self.samples
        for s, part in zip(alive, parts):
            with np.load(s.out / "samples.npz") as data:
                for name in ("subscriber", "seq", "index", "sent_ns", "recv_ns"):
                    getattr(samples, name).extend(array("q", data[name].astype(np.int64).tobytes()))
            samples.delivered += part["delivered"]
            self.shard_nodelay.append(part["nodelay"])
            self.errors += part["errors"]
            for message in part["error_messages"]:
                if len(self.error_messages) < 20:
                    self.error_messages.append(f"shard {s.k}: {message}")
            per_sub = json.loads((s.out / "logs.json").read_text())
            self._faults.extend(tuple(f) for f in per_sub["faults"])
            for sid, dup, reo, highest in per_sub["logs"]:
                log = self.logs[sid]
                log.duplicated, log.reordered, log.highest = dup, reo, highest

    async def close(self) -> None:
        for s in self.shards:
            if s.proc.returncode is None:
                try:
                    s.tell(cmd="close")
                except (ConnectionError, RuntimeError):
                    pass
        for s in self.shards:
            try:
                await asyncio.wait_for(s.proc.wait(), 10.0)
            except asyncio.TimeoutError:
                s.proc.kill()
        await super().close()


def _merge(parts: list[dict], sent: int) -> dict:
    tcp = tuple(sum(p["sub"][i] for p in parts) for i in range(4)) if parts else (0, 0, 0, 0)
    return {"sub": tcp, "sent": sent,
            **{k: sum(p[k] for p in parts) for k in ("requests", "connections", "reconnects")}}


# The shard process


async def _serve(spec: LoadSpec, out: Path, k: int, n: int) -> int:
    gen = LoadGen(spec, out, members=[c for c in range(spec.clients) if c % n == k])
    gen.is_conductor = False
    reader = asyncio.StreamReader(limit=1 << 24)  # per-topic lists: one int per topic
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await gen._connect_subscribers()
    except ClientError as exc:
        emit("failed", message=str(exc))
        return 1
    emit("ready", clients=len(gen.members))
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        kind = cmd["cmd"]
        if kind == "settle":
            await gen._settle_warmup(cmd["owed"])
            emit("settled", note=gen.bytes_window_note)
        elif kind == "snapshot":
            emit("snapshot", **gen._snapshot())
        elif kind == "latency":
            lat = await gen.latencies_ns()
            # The conductor needs a p99 over all shards: send a thin quantile sketch.
            q = np.percentile(lat, np.linspace(0, 100, 101)).astype(np.int64).tolist() if len(lat) else []
            emit("latency", p99_ns=q)
        elif kind == "drain":
            counts = np.asarray(cmd["per_topic"], dtype=np.int64)
            gen.expected_so_far = int(sum(counts[log.topic_k] for log in gen.logs))
            await gen.wait_delivered(int(cmd["deadline_ns"]))
            emit("drained", **gen._snapshot())
        elif kind == "write":
            gen.flush()
            s = gen.samples
            np.savez(out / "samples.npz", **{name: np.frombuffer(getattr(s, name), dtype=np.int64)
                                            for name in ("subscriber", "seq", "index", "sent_ns",
                                                         "recv_ns")})
            from .counters import nodelay_state
            # Per-subscriber figures go to a file: thousands of them make a line too long.
            (out / "logs.json").write_text(json.dumps({
                "logs": [[log.sid, log.duplicated, log.reordered, log.highest] for log in gen.logs],
                "faults": [[gen.members[j], d, r, z, down]
                           for j, d, r, z, down in gen.fault_stats()]}))
            emit("written", delivered=s.delivered, errors=gen.errors, nodelay=nodelay_state(gen),
                 error_messages=gen.error_messages)
        elif kind == "close":
            await gen.close()
            return 0
    await gen.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print("usage: python -m clients.shard SPEC.json OUT_DIR K N", file=sys.stderr)
        return 2
    tune_process()
    # The conductor decides when a shard stops (it collects the shard's samples
    # first): a supervisor's SIGTERM / SIGINT to the whole process group is its to
    # handle; a shard still dies at once should the conductor itself die.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    raise_nofile_limit()
    spec = LoadSpec.from_file(args[0])
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_serve(spec, Path(args[1]), int(args[2]), int(args[3])))


if __name__ == "__main__":
    sys.exit(main())
