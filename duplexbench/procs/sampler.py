"""Sampling processes from the outside: CPU (schedstat nanoseconds and ticks), memory, sockets.

The :class:`Sampler` watches named process trees from the runner's process,
never from inside the process under test, at 20 Hz by default, so a server's
CPU and memory are what the server itself used. CPU comes two ways: psutil's
user+system times (10 ms clock ticks) and :func:`schedstat_ns` (nanoseconds on
the CPU from ``/proc/PID/task/*/schedstat``); the second is the figure, the
first a cross-check. Each tree's figures sum the process and its descendants
(a load generator's shards and publisher, Locust's master and workers).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

import psutil

__all__ = ["PROC_SAMPLE_FIELDS", "ProcSample", "Sampler", "count_socket_fds", "samples_to_rows",
           "schedstat_ns"]


@dataclass(frozen=True)
class ProcSample:
    """One observation of one process tree. CPU seconds are cumulative since it started."""

    process: str
    t_s: float  # seconds since the sampler started (monotonic clock)
    cpu_user_s: float  # clock ticks (10 ms): kept as a cross-check of cpu_sched_s
    cpu_system_s: float
    rss_mib: float
    open_files: int  # file descriptors, sockets included
    connections: int  # TCP sockets (see Sampler on how they are counted)
    phase: str
    #: Time on CPU from /proc/PID/task/*/schedstat, nanosecond resolution (see schedstat_ns).
    cpu_sched_s: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


PROC_SAMPLE_FIELDS = tuple(f.name for f in fields(ProcSample))

#: A connection count dearer than this (seconds) is taken less often, so the
#: sampler thread stays a small, steady load next to the processes it watches.
_CONN_BUDGET_S = 0.002


def count_socket_fds(pid: int) -> int:
    """Sockets among /proc/PID/fd: ~5x cheaper than psutil.net_connections on Linux."""
    count = 0
    base = f"/proc/{pid}/fd"
    try:
        with os.scandir(base) as entries:
            for entry in entries:
                try:
                    if os.readlink(entry.path).startswith("socket:"):
                        count += 1
                except OSError:  # closed between listing and reading
                    pass
    except OSError:
        return 0
    return count


def schedstat_ns(pid: int, seen: dict[int, int] | None = None) -> int | None:
    """Nanoseconds on CPU of every thread of ``pid`` (first field of ``schedstat``).

    The scheduler accounts this in nanoseconds, where ``/proc/PID/stat`` rounds to
    10 ms ticks (one tick is 4 % of a 250 ms share). Summed over
    ``/proc/PID/task/*`` because ``/proc/PID/schedstat`` covers the main thread
    only. ``seen`` (tid -> ns) keeps a thread's last figure after it exits, so
    the sum never drops. None when the process is gone or schedstat is missing.
    """
    seen = {} if seen is None else seen
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return None
    found = False
    for tid in tids:
        try:
            with open(f"{base}/{tid}/schedstat", "rb") as file:
                seen[int(tid)] = int(file.read().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            pass  # a thread that exited between listing and reading
    return sum(seen.values()) if found else None


class _Watched:
    """Book-keeping for one named process tree."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.root = psutil.Process(pid)
        self.procs: dict[int, psutil.Process] = {pid: self.root}
        #: Last CPU times seen per pid: a child that exits (a Locust worker)
        #: keeps contributing what it used, so cumulative CPU never drops.
        self.cpu: dict[int, tuple[float, float]] = {}
        #: pid -> {tid -> ns on CPU}, kept after exit like ``cpu``.
        self.sched: dict[int, dict[int, int]] = {}
        self.sched_ok = True
        self.connections = 0
        self.conn_method = "net_connections"
        self.conn_next_t = 0.0
        self.gone = False

    def refresh_children(self) -> None:
        try:
            for child in self.root.children(recursive=True):
                self.procs.setdefault(child.pid, child)
        except psutil.Error:
            pass

    def count_connections(self, now: float, interval: float) -> None:
        if now < self.conn_next_t:
            return  # carry the last count forward: see _CONN_BUDGET_S
        started = time.perf_counter()
        total = 0
        for proc in list(self.procs.values()):
            try:
                if self.conn_method == "net_connections":
                    total += len(proc.net_connections(kind="tcp"))
                else:
                    total += count_socket_fds(proc.pid)
            except psutil.AccessDenied:
                self.conn_method = "fd_scan"
                total += count_socket_fds(proc.pid)
            except psutil.Error:
                pass
        cost = time.perf_counter() - started
        self.connections = total
        if cost > _CONN_BUDGET_S and self.conn_method == "net_connections":
            # Measured: net_connections costs ~20 ms per 1,000 sockets, the fd scan ~4 ms.
            self.conn_method = "fd_scan"
        # Spend at most ~_CONN_BUDGET_S per sampling interval, on average, on counting.
        self.conn_next_t = now + max(0.0, (cost / _CONN_BUDGET_S - 1.0) * interval)

    def sample(self, t_s: float, now: float, interval: float, phase: str) -> ProcSample | None:
        rss = 0
        fds = 0
        alive = 0
        for pid, proc in list(self.procs.items()):
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    mem = proc.memory_info()
                    nfds = proc.num_fds()
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        raise psutil.NoSuchProcess(pid)
            except psutil.Error:
                del self.procs[pid]
                continue
            self.cpu[pid] = (times.user, times.system)
            if self.sched_ok and schedstat_ns(pid, self.sched.setdefault(pid, {})) is None \
                    and os.path.exists(f"/proc/{pid}"):
                self.sched_ok = False  # a kernel without schedstat: ticks only (NaN here)
            rss += mem.rss
            fds += nfds
            alive += 1
        if not alive:
            self.gone = True
            return None
        self.count_connections(now, interval)
        return ProcSample(
            process=self.name,
            t_s=round(t_s, 4),
            cpu_user_s=sum(u for u, _ in self.cpu.values()),
            cpu_system_s=sum(s for _, s in self.cpu.values()),
            rss_mib=rss / 2**20,
            open_files=fds,
            connections=self.connections,
            phase=phase,
            cpu_sched_s=(sum(sum(t.values()) for t in self.sched.values()) / 1e9
                         if self.sched_ok and self.sched else float("nan")),
        )


class Sampler:
    """Samples named process trees at ``hz`` in a background thread.

    ``with Sampler({"server": pid, "loadgen": pid}) as s: ... s.phase = "measure"``;
    ``s.samples`` holds :class:`ProcSample` rows. Each tree's figures sum the
    process and its descendants (a Locust master and its workers count as one
    load generator). Sleeps to absolute deadlines, so the rate does not drift
    with the cost of a sample; a late tick is skipped, not bunched.
    """

    def __init__(self, targets: Mapping[str, int], hz: float = 20.0) -> None:
        if hz <= 0:
            raise ValueError("hz must be positive")
        self.interval = 1.0 / hz
        self._watched: list[_Watched] = []
        for name, pid in targets.items():
            try:
                self._watched.append(_Watched(name, pid))
            except psutil.NoSuchProcess:
                pass
        #: Tag stored with every sample; the runner sets it from loadgen events.
        self.phase = "start"
        self.samples: list[ProcSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="duplexbench-sampler", daemon=True)
        self._t0 = 0.0

    def add(self, name: str, pid: int) -> None:
        """Watch another process tree from the next tick on."""
        try:
            self._watched.append(_Watched(name, pid))
        except psutil.NoSuchProcess:
            pass

    def start(self) -> "Sampler":
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> list[ProcSample]:
        """Take a last sample (final CPU totals) and stop; returns all samples."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        return self.samples

    def _tick(self, tick: int) -> None:
        now = time.monotonic()
        if tick % 10 == 0:  # new children (Locust workers) show up within half a second
            for watched in self._watched:
                watched.refresh_children()
        for watched in self._watched:
            if watched.gone:
                continue
            sample = watched.sample(now - self._t0, now, self.interval, self.phase)
            if sample is not None:
                self.samples.append(sample)

    def _run(self) -> None:
        tick = 0
        deadline = time.monotonic()
        while True:
            self._tick(tick)
            tick += 1
            deadline += self.interval
            now = time.monotonic()
            if now > deadline:  # fell behind: skip the missed ticks
                deadline = now
            if self._stop.wait(max(0.0, deadline - now)):
                self._tick(tick)
                return

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def samples_to_rows(samples: Iterable[ProcSample], **keys: object) -> list[dict]:
    """Plain dicts with extra key columns first (point, repeat, transport, ...)."""
    return [{**keys, **sample.to_dict()} for sample in samples]

