"""Helpers shared by the runner tests: tiny scenarios, the fake engine's path, leftovers."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

FAKE = Path(__file__).with_name("fake_loadgen.py")

TINY = """
name = "tiny"
transports = {transports}
clients = {clients}
rate = [50]
payload_bytes = [32]
warmup_s = 0.5
duration_s = {duration}
drain_s = 0.5
[server]
uvloop = false
"""


def write_scenario(tmp_path: Path, transports=("longpoll", "websocket"), clients=(3,),
                   duration=1.5) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(transports=json.dumps(list(transports)),
                                clients=json.dumps(list(clients)), duration=duration))
    return path


def no_children_left() -> list[str]:
    """Our own descendants still running (zombies excluded): must be none."""
    left = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(child.cmdline()))
        except psutil.NoSuchProcess:
            pass
    return left


