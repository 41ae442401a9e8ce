"""Load-generator layout and the limits checked before a run starts."""

from __future__ import annotations

import pytest

from duplexbench.machine.limits import (
    LimitError,
    check_point,
    ephemeral_ports,
    loadgen_layout,
)


def test_default_layout_uses_every_free_core():
    two = loadgen_layout(0, allowed=[0, 1])
    assert (two.procs, two.cpus, two.publisher_cpu, two.cores) == (1, (1,), 1, 1)
    assert "add no CPU here" in two.hint  # this machine: nothing more to add
    eight = loadgen_layout(0, allowed=list(range(8)))
    assert eight.cpus == (1, 2, 3, 4, 5, 6) and eight.publisher_cpu == 7 and eight.procs == 6
    assert eight.cores == 7
    few = loadgen_layout(0, 2, allowed=list(range(8)))
    assert few.procs == 2 and few.cores == 3 and "--loadgen-procs 6" in few.hint
    assert "--workers" in loadgen_layout(0, engine="locust", allowed=[0, 1, 2]).hint


def test_open_files_limit_names_the_limit_and_the_fix():
    layout = loadgen_layout(0, allowed=[0, 1])
    with pytest.raises(LimitError, match=r"server process.*ulimit -Hn"):
        check_point(30_000, transport="sse", layout=layout, nofile=(20_000, 20_000), ports=60_000)
    assert check_point(10_000, transport="sse", layout=layout, nofile=(20_000, 20_000),
                       ports=28_232) == {}


def test_ports_beyond_one_address_choose_several_loopback_addresses():
    layout = loadgen_layout(0, 4, allowed=[0, 1])
    extra = check_point(50_000, transport="websocket", layout=layout,
                        nofile=(200_000, 200_000), ports=28_232)
    assert extra["source_addrs"] == ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    with pytest.raises(LimitError, match="ip_local_port_range"):
        check_point(50_000, transport="websocket", layout=layout, nofile=(200_000, 200_000),
                    ports=28_232, spec_fields=frozenset({"clients"}))


def test_port_range_of_this_machine_is_read():
    assert ephemeral_ports() > 1000
