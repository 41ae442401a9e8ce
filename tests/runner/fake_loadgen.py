"""A stand-in load generator with scripted behaviour, for the runner's failure paths.

``python fake_loadgen.py MODE SPEC.json OUT_DIR``. It speaks the engine
protocol of DESIGN.md (JSON events on stdout, counters.json, samples.parquet)
without any network traffic, so each failure the runner must survive can be
produced on demand: ``ok``, ``lost`` (3 messages lost), ``crash`` (exit 1 after
'ready' with a message on stderr), ``hang`` (never says 'done': the runner's
watchdog must stop it; it also starts a grandchild that must not survive),
``killserver`` (SIGKILLs the server under test, found by /healthz, then waits).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main() -> int:
    mode, spec_path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    spec = json.loads(spec_path.read_text())
    emit("ready", clients=spec["clients"])
    if mode == "crash":
        print("fake loadgen: simulated crash", file=sys.stderr, flush=True)
        return 1
    if mode == "killserver":
        with urllib.request.urlopen(spec["pub_url"] + "/healthz", timeout=5) as response:
            os.kill(json.loads(response.read())["pid"], signal.SIGKILL)
        emit("phase", phase="warmup")
        time.sleep(60)
        return 0
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        (out / "grandchild.pid").write_text(str(child.pid))
        print(f"grandchild {child.pid}", file=sys.stderr, flush=True)
        time.sleep(120)
        return 0
    start = time.monotonic_ns()
    for phase, seconds in (("warmup", spec["warmup_s"]), ("measure", spec["duration_s"]),
                           ("drain", 0.1)):
        emit("phase", phase=phase)
        time.sleep(min(seconds, 0.3))
        emit("progress", sent=10, delivered=10 * spec["clients"])
    end = time.monotonic_ns()
    n, clients = 20, spec["clients"]
    lost = 3 if mode == "lost" else 0
    rows = []
    for sub in range(clients):
        for i in range(n - (lost if sub == 0 else 0)):
            intended = start + i * 1_000_000
            rows.append({"subscriber": sub, "seq": i + 1, "index": i, "intended_ns": intended,
                         "sent_ns": intended + 100_000, "recv_ns": intended + 2_000_000})
    pd.DataFrame(rows).to_parquet(out / "samples.parquet", index=False)
    counters = {
        "published": n, "expected": n * clients, "delivered": n * clients - lost, "lost": lost,
        "duplicated": 0, "reordered": 0, "reconnects": 0, "errors": 0, "message_bytes": 80,
        "measure_start_ns": start, "measure_end_ns": end, "clock": "monotonic",
        "wire": {"sub": {"bytes_up": 0, "bytes_down": 100 * n * clients, "http_requests": 0},
                 "pub": {"bytes_up": 200 * n, "http_requests": n}},
    }
    (out / "counters.json").write_text(json.dumps(counters))
    emit("done", complete=True, delivered=n * clients - lost, lost=lost)
    return 0


if __name__ == "__main__":
    sys.exit(main())
