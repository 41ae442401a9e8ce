"""Process handling: the children a benchmark starts, and sampling them from outside.

- :mod:`~duplexbench.procs.children`: spawn, pin to a core, track, kill the tree, signals;
- :mod:`~duplexbench.procs.sampler`: CPU (schedstat), memory and connections at 20 Hz;
- :mod:`~duplexbench.procs.announced`: a helper process that prints its address first;
- :mod:`~duplexbench.procs.server`: the server under test as such a process.

The names of the first two are re-exported here (``from duplexbench import procs;
procs.spawn(...)``), the one face the rest of the harness uses.
"""

from .children import (
    AffinityPlan,
    Child,
    Terminated,
    dying_with_parent,
    install_signal_handlers,
    kill_all,
    kill_procs,
    kill_tree,
    pin,
    plan_affinity,
    raise_nofile_limit,
    shielded,
    spawn,
    track,
    tracked,
    untrack,
)
from .sampler import (
    PROC_SAMPLE_FIELDS,
    ProcSample,
    Sampler,
    count_socket_fds,
    samples_to_rows,
    schedstat_ns,
)

__all__ = [
    "PROC_SAMPLE_FIELDS",
    "AffinityPlan",
    "Child",
    "ProcSample",
    "Sampler",
    "Terminated",
    "count_socket_fds",
    "dying_with_parent",
    "install_signal_handlers",
    "kill_all",
    "kill_procs",
    "kill_tree",
    "pin",
    "plan_affinity",
    "raise_nofile_limit",
    "samples_to_rows",
    "schedstat_ns",
    "shielded",
    "spawn",
    "track",
    "tracked",
    "untrack",
]
