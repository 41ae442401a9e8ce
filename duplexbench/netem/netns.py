"""Kernel netem in a network namespace, where the machine has it — and a clear "no" where not.

Why both this and the proxy: netem delays packets in the kernel, so it costs the
measured processes nothing and also delays TCP's own handshake and ACKs; the
proxy works everywhere. Many machines (these included: "Specified qdisc kind is
unknown") lack the ``sch_netem`` module, so :func:`detect_netem` tries it in a
throwaway namespace and returns a reason instead of raising; the caller falls
back to the proxy and records the reason.

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
import shutil
import subprocess
import sys
from dataclasses import dataclass

from .link import LinkConfig
from .process import ProxyProcess

__all__ = ["NetemSupport", "NetnsLink", "detect_netem"]

_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class NetemSupport:
    available: bool
    reason: str  # "available" or "unavailable: <why>"


def _run(*args: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


_DETECTED: NetemSupport | None = None


def detect_netem(refresh: bool = False) -> NetemSupport:
    """Can this machine put netem on a link in a namespace we create? Never raises."""
    global _DETECTED
    if _DETECTED is not None and not refresh:
        return _DETECTED
    _DETECTED = _detect()
    return _DETECTED


def _detect() -> NetemSupport:
    if not sys.platform.startswith("linux"):
        return NetemSupport(False, f"unavailable: netem is Linux-only (platform {sys.platform})")
    if os.geteuid() != 0:
        return NetemSupport(False, "unavailable: network namespaces and tc need root")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return NetemSupport(False, f"unavailable: `{tool}` (iproute2) is not installed")
    ns = f"dbench-probe-{os.getpid()}-{next(_counter)}"
    try:
        made = _run("ip", "netns", "add", ns)
        if made.returncode != 0:
            return NetemSupport(False, f"unavailable: `ip netns add` failed: {made.stderr.strip()}")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        probe = _run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "10ms")
        if probe.returncode != 0:
            why = (probe.stderr or probe.stdout).strip().splitlines()
            return NetemSupport(
                False,
                "unavailable: `tc qdisc add dev lo root netem delay 10ms` in a fresh namespace "
                f"answered {why[0] if why else f'exit {probe.returncode}'!r} (no sch_netem in this kernel)",
            )
        return NetemSupport(True, "available")
    except (OSError, subprocess.SubprocessError) as exc:
        return NetemSupport(False, f"unavailable: probing failed: {exc}")
    finally:
        try:
            _run("ip", "netns", "del", ns)
        except (OSError, subprocess.SubprocessError):
            pass


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
