"""Will a point fit on this machine? Checked before a run starts, not discovered mid-run.

Two kinds of decision live here:

- **The load generator's layout** (:func:`loadgen_layout`): how many subscriber
  shard processes (``--loadgen-procs``, default one per allowed core other
  than the server's, at least 1), the cores they are pinned to (round-robin)
  and the publisher's core. With three or more free cores the publisher gets
  one of its own, so its send times are never late because of subscribers.
  The layout also says which option would add load-generator capacity here
  (:attr:`LoadgenLayout.hint`), so a saturation warning never recommends a knob
  that adds nothing on this machine.
- **Limits** (:func:`check_point`): open files per process (the server holds
  one socket per subscriber; each shard holds its share) against
  ``RLIMIT_NOFILE``, and concurrent connections per source address against
  the ephemeral port range (``/proc/sys/net/ipv4/ip_local_port_range``). When
  one address has too few ports, several 127.0.0.x addresses are chosen
  (``source_addrs``: all of 127/8 is loopback on Linux). A point that cannot
  fit raises :class:`LimitError` naming the limit and how to raise it.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FD_MARGIN",
    "LimitError",
    "LoadgenLayout",
    "PORT_SHARE",
    "check_point",
    "ephemeral_ports",
    "loadgen_layout",
    "nofile_limits",
]

#: File descriptors a process needs besides its sockets (interpreter, pipes,
#: logs, epoll, the listening socket) plus a share for reconnects in flight.
FD_MARGIN = 256
FD_SHARE = 0.05
#: Use at most this share of one address's ephemeral ports: sockets in
#: TIME_WAIT (long polling without keep-alive, reconnects) hold ports too.
PORT_SHARE = 0.8
#: Highest number of extra loopback source addresses chosen automatically.
MAX_SOURCE_ADDRS = 64


class LimitError(ValueError):
    """A point cannot fit on this machine; the message names the limit and the fix."""


@dataclass(frozen=True)
class LoadgenLayout:
    """Where the load generator's processes go."""

    procs: int
    cpus: tuple[int, ...]
    publisher_cpu: int | None
    #: Cores the load generator may use (the validity of its CPU share).
    cores: int
    #: What adds load-generator capacity on this machine (for saturation warnings).
    hint: str
    #: Allowed cores not used by the server.
    free_cores: tuple[int, ...] = field(default=())

    def spec_fields(self) -> dict:
        return {"loadgen_procs": self.procs, "loadgen_cpus": self.cpus,
                "publisher_cpu": self.publisher_cpu}


def _allowed_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def loadgen_layout(server_cpu: int | None, requested: int | None = None, *,
                   engine: str = "native", allowed: list[int] | None = None) -> LoadgenLayout:
    """The load generator's processes and cores; ``requested`` = ``--loadgen-procs``."""
    allowed = sorted(allowed if allowed is not None else _allowed_cpus())
    free = tuple(c for c in allowed if c != server_cpu) or tuple(allowed[:1])
    if server_cpu is None:  # not pinned (one core, or no affinity support): share all
        free = tuple(allowed)
    if len(free) >= 3:
        shard_cpus, publisher = free[:-1], free[-1]
    else:
        shard_cpus, publisher = free, free[0] if free else None
    procs = max(1, requested if requested else len(shard_cpus))
    # The cores the generator can actually keep busy: its processes (the publisher's
    # own core counted) on at most its free cores. Its CPU share is judged per core.
    own_publisher = 1 if len(free) >= 3 else 0
    usable_cores = max(1, min(len(free), procs + own_publisher))
    if engine == "locust":
        hint = ("add Locust workers (--workers N, up to one per free core)" if len(free) > 1
                else "lower the rate or clients: this machine has no free core for another "
                     "Locust worker")
    elif procs < len(shard_cpus):
        hint = f"add load-generator processes (--loadgen-procs {len(shard_cpus)})"
    else:
        hint = (f"lower the rate or clients: every free core ({len(free)}) already runs "
                "the load generator, so more processes (--loadgen-procs) add no CPU here")
    return LoadgenLayout(procs, tuple(shard_cpus), publisher, usable_cores, hint, free)


def nofile_limits() -> tuple[int, int]:
    """(soft, hard) open-files limit of this process (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    big = 1 << 30
    return (big if soft == resource.RLIM_INFINITY else soft,
            big if hard == resource.RLIM_INFINITY else hard)


def ephemeral_ports(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    """How many local ports one source address can use for outgoing connections."""
    try:
        low, high = (int(x) for x in Path(path).read_text().split()[:2])
        return max(0, high - low + 1)
    except (OSError, ValueError):
        return 28232  # Linux's default range 32768-60999


def _fds_needed(sockets: int) -> int:
    return sockets + FD_MARGIN + math.ceil(sockets * FD_SHARE)


def check_point(clients: int, *, transport: str, layout: LoadgenLayout,
                nofile: tuple[int, int] | None = None, ports: int | None = None,
                spec_fields: frozenset[str] | None = None) -> dict:
    """LoadSpec fields a point needs (``source_addrs``), or LimitError when it cannot fit.

    ``nofile``/``ports`` default to this machine's; ``spec_fields`` are the
    fields the installed LoadSpec knows (None = assume all).
    """
    soft, hard = nofile if nofile is not None else nofile_limits()
    limit = max(soft, hard)  # the runner raises soft to hard before the run
    connections = clients + 2  # + the publisher's connection(s)
    server_fds = _fds_needed(connections)
    if server_fds > limit:
        raise LimitError(
            f"{clients} {transport} subscribers need ~{server_fds} open files in the server "
            f"process (one socket each, plus margin), above the open-files limit of {limit} "
            "(RLIMIT_NOFILE hard limit, `ulimit -Hn`): raise it (limits.conf `nofile`, "
            "systemd LimitNOFILE, or `prlimit`) or use fewer subscribers")
    per_shard = math.ceil(clients / max(1, layout.procs))
    shard_fds = _fds_needed(per_shard)
    if shard_fds > limit:
        need = math.ceil(clients / max(1, limit - FD_MARGIN) * (1 + FD_SHARE))
        raise LimitError(
            f"{clients} subscribers over {layout.procs} load-generator process(es) need "
            f"~{shard_fds} open files per process, above the open-files limit of {limit} "
            f"(`ulimit -Hn`): use --loadgen-procs {max(need, layout.procs + 1)} or raise the limit")
    extra: dict = {}
    usable = int((ports if ports is not None else ephemeral_ports()) * PORT_SHARE)
    if connections > usable:
        addrs = math.ceil(connections / max(1, usable))
        if addrs > MAX_SOURCE_ADDRS:
            raise LimitError(
                f"{clients} subscribers need {addrs} source addresses of ~{usable} ephemeral "
                "ports each (net.ipv4.ip_local_port_range): widen the range "
                "(sysctl -w net.ipv4.ip_local_port_range='1024 65000') or use fewer subscribers")
        if spec_fields is not None and "source_addrs" not in spec_fields:
            raise LimitError(
                f"{clients} subscribers need more than the ~{usable} ephemeral ports of one "
                "source address (net.ipv4.ip_local_port_range), and this load generator "
                "cannot bind several (no LoadSpec.source_addrs): widen the port range "
                "(sysctl -w net.ipv4.ip_local_port_range='1024 65000')")
        extra["source_addrs"] = tuple(f"127.0.0.{i}" for i in range(2, 2 + addrs))
    return extra
