"""Kernel netem in a network namespace, where the machine has it — and a clear "no" where not.

Why both this and the proxy: netem delays packets in the kernel, so it costs the
measured processes nothing and also delays TCP's own handshake and ACKs; the
proxy works everywhere. Many machines (these included: "Specified qdisc kind is
unknown") lack the ``sch_netem`` module, so :func:`detect_netem` (in
:mod:`duplexbench.machine.netem`, which ``doctor`` shares) tries it in a throwaway
namespace and returns a reason instead of raising; the caller falls back to the
proxy and records the reason.

Topology when available (the server stays on 127.0.0.1 in the root namespace)::

    subscribers --veth(host->ns: netem d/2)--> relay B (in ns)
                --veth(ns->host: netem d/2)--> relay C (root ns) --> server

Both veth ends carry ``netem delay d/2``; each direction crosses both ends, so
the one-way delay is ``d`` and the round trip ``2d``. B and C are the proxy with
delay 0 (they only re-route); their cost is what the delay-0 calibration shows.
This mode cannot be exercised on machines without netem; it is written to the
same contract and falls back rather than fails.
"""

from __future__ import annotations

import itertools
import os
import subprocess

from ..machine.netem import NetemSupport, detect_netem
from .link import LinkConfig
from .process import ProxyProcess

__all__ = ["NetemSupport", "NetnsLink", "detect_netem"]

_counter = itertools.count()


def _run(*args: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def _netem_args(config: LinkConfig) -> list[str]:
    """Half of the link per veth end (each direction crosses both ends)."""
    args = ["netem", "delay", f"{config.delay_ms / 2:.3f}ms"]
    if config.jitter_ms:
        args += [f"{config.jitter_ms / 2:.3f}ms"]
    if config.loss_pct:
        # Two crossings: 1-(1-q)^2 = p  =>  q = 1 - sqrt(1-p).
        q = 1 - (1 - config.loss_pct / 100) ** 0.5
        args += ["loss", f"{q * 100:.4f}%"]
    if config.bandwidth_kbps:
        args += ["rate", f"{config.bandwidth_kbps:g}kbit"]
    return args


class NetnsLink:
    """A namespace, a veth pair with netem on both ends, and the two relays (see module doc)."""

    def __init__(self, config: LinkConfig, target: tuple[str, int], cpu: int | None = None) -> None:
        n = (os.getpid() * 7 + next(_counter)) % 250 + 1
        self.config = config
        self.target = target
        self.cpu = cpu
        self.ns = f"dbench-{os.getpid()}-{n}"
        self.host_if, self.ns_if = f"dbh{n}", f"dbn{n}"
        self.host_ip, self.ns_ip = f"10.213.{n}.1", f"10.213.{n}.2"
        self.relays: list[ProxyProcess] = []
        self.address: tuple[str, int] | None = None

    def _must(self, *args: str) -> None:
        done = _run(*args)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")

    def start(self) -> "NetnsLink":
        try:
            exec_ns = ("ip", "netns", "exec", self.ns)
            self._must("ip", "netns", "add", self.ns)
            self._must("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if, "netns", self.ns)
            self._must("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            self._must("ip", "link", "set", self.host_if, "up")
            self._must(*exec_ns, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
            self._must(*exec_ns, "ip", "link", "set", self.ns_if, "up")
            self._must(*exec_ns, "ip", "link", "set", "lo", "up")
            netem = _netem_args(self.config)
            self._must("tc", "qdisc", "add", "dev", self.host_if, "root", *netem)
            self._must(*exec_ns, "tc", "qdisc", "add", "dev", self.ns_if, "root", *netem)
            plain = LinkConfig(handshake=False)  # the kernel delays the real handshake
            relay_c = ProxyProcess(plain, self.target, listen=(self.host_ip, 0), cpu=self.cpu).start()
            self.relays.append(relay_c)
            assert relay_c.address is not None
            relay_b = ProxyProcess(plain, relay_c.address, listen=(self.ns_ip, 0), cpu=self.cpu,
                                   prefix=exec_ns).start()
            self.relays.append(relay_b)
            self.address = relay_b.address
            return self
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for relay in reversed(self.relays):
            relay.stop()
        self.relays.clear()
        for args in (("ip", "link", "del", self.host_if), ("ip", "netns", "del", self.ns)):
            try:
                _run(*args)
            except (OSError, subprocess.SubprocessError):
                pass
