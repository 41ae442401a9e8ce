"""``python -m duplexbench engines --latency``: the native engine's WebSocket latency
against a minimal compiled client, at the same point, in one run.

Why: the engine's ``lat_p50`` is measured from each message's *intended*
send time, so anything the load generator adds (a late publisher, a slow
receive path) is counted as the transport's latency. The reference
(clients.minimal) is as little as a client can be: picows subscribers that
only timestamp frames, and a publisher process that stamps ``ts`` when it
writes. Both run, one after the other, against the same server process with
the same pinning (server on its core, client on the load-generator core), at
10 and 50 subscribers, WebSocket fan-out, 200 msg/s of 64 B. The check: the
engine's ``lat_p50`` within ``LIMIT`` x the reference's p50.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from clients.spec import LoadSpec

from .. import procs
from ..measure.results import atomic_write_json
from ..procs.server import ServerProcess

__all__ = ["LIMIT", "main", "out_dir"]

LIMIT = 1.3
RATE = 200.0
SECONDS = 6.0


def _native(url: str, clients: int, out: Path, cpu: int | None) -> dict:
    spec = LoadSpec(transport="websocket", sub_url=url, clients=clients, rate=RATE,
                    payload_bytes=64, warmup_s=2.0, duration_s=SECONDS, drain_s=2.0,
                    topic_prefix=f"lat-n{clients}-{time.monotonic_ns() % 10**6}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(spec.to_json())
    cmd = [sys.executable, "-m", "clients.loadgen", str(out / "spec.json"), str(out)]
    subprocess.run(_pinned(cmd, cpu), check=True, stdout=subprocess.DEVNULL, timeout=120)
    counters = json.loads((out / "counters.json").read_text())
    s = pd.read_parquet(out / "samples.parquet")
    lat = (s["recv_ns"] - s["intended_ns"]).to_numpy() / 1e6
    sent = (s["recv_ns"] - s["sent_ns"]).to_numpy() / 1e6
    late = (s["sent_ns"] - s["intended_ns"]).to_numpy() / 1e3
    return {"engine": "native", "subscribers": clients, "delivered": counters["delivered"],
            "lost": counters["lost"], "lat_p50_ms": float(np.median(lat)),
            "lat_p99_ms": float(np.percentile(lat, 99)), "sent_p50_ms": float(np.median(sent)),
            "publisher_late_p50_us": float(np.median(late)),
            "publisher_sched": counters.get("publisher_sched")}


def _minimal(url: str, clients: int, out: Path, cpu: int | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    topic = f"lat-m{clients}-{time.monotonic_ns() % 10**6}"
    cmd = [sys.executable, "-m", "clients.minimal", url, topic, str(clients), str(RATE),
           str(SECONDS), str(out / "minimal.json")]
    subprocess.run(_pinned(cmd, cpu), check=True, timeout=120)
    result = json.loads((out / "minimal.json").read_text())
    return {"engine": "minimal", **result}


def _pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else cmd


def out_dir(argv: list[str]) -> Path:
    """The results directory: ``DIR`` or ``--out DIR`` (as ``engines`` takes it; ``--out`` was
    once taken for a directory of that name), else results/engines-latency-<time>."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m duplexbench engines --latency")
    parser.add_argument("out_dir", nargs="?", help="results directory")
    parser.add_argument("--out", dest="out_opt", help="results directory")
    args = parser.parse_args(argv)
    chosen = args.out_opt or args.out_dir
    if chosen:
        return Path(chosen)
    return Path("results") / f"engines-latency-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def main(argv: list[str] | None = None) -> int:
    out = out_dir(argv or [])
    plan = procs.plan_affinity()
    procs.raise_nofile_limit()
    rows: list[dict] = []
    failed = False
    print(f"engines --latency: WebSocket fan-out, {RATE:g} msg/s, 64 B; server CPU {plan.server}, "
          f"clients CPU {plan.loadgen}")
    with ServerProcess(transport="all", args=["--uvloop"], cpu=plan.server) as server:
        for clients in (10, 50):
            native = _native(server.url, clients, out / f"native-{clients}", plan.loadgen)
            minimal = _minimal(server.url, clients, out / f"minimal-{clients}", plan.loadgen)
            ratio = native["lat_p50_ms"] / minimal["lat_p50_ms"] if minimal["lat_p50_ms"] else None
            rows += [native, minimal]
            if ratio is None:
                print(f"  {clients:3d} subscribers: the minimal client received nothing",
                      file=sys.stderr)
                failed = True
                continue
            verdict = "ok" if ratio <= LIMIT else "ABOVE LIMIT"
            failed = failed or ratio > LIMIT
            native["ratio_to_minimal"] = round(ratio, 3)
            print(f"  {clients:3d} subscribers: native lat_p50 {native['lat_p50_ms']:.3f} ms "
                  f"(sent_p50 {native['sent_p50_ms']:.3f}, publisher late p50 "
                  f"{native['publisher_late_p50_us']:.0f} us), minimal p50 "
                  f"{minimal['lat_p50_ms']:.3f} ms: {ratio:.2f}x ({verdict}, limit {LIMIT}x)")
    atomic_write_json(out / "latency.json", {"schema_version": 1, "limit": LIMIT, "rate": RATE,
                                             "affinity": plan.to_meta(), "rows": rows})
    print(f"results: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
