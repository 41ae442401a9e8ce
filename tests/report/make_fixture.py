"""Write the small, synthetic results directories the report tests run against.

Real runs exist only after a benchmark, and their numbers change from machine to
machine; the report's tests need fixed numbers in the exact results schema
(docs/DESIGN.md, "Results"). Every value here comes from a simple cost model
(per-message CPU, per-connection memory, per-message header bytes) with seeded
noise: plausible, clearly synthetic, and small enough to commit (< 300 KB).

    .venv/bin/python tests/report/make_fixture.py [OUT_DIR]   # default: results/fixtures

Tests import `write_run` / `RunModel` to build variants (ties, one cheap transport).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TransportModel", "RunModel", "MODELS", "write_run", "main", "SUMMARY_COLUMNS"]

ROOT = Path(__file__).resolve().parents[2]

SUMMARY_COLUMNS = (
    "run_id scenario engine transport point repeat clients rate_msgs_s payload_bytes message_bytes "
    "delay_ms keepalive pattern upstream duration_s sent expected delivered lost duplicated "
    "reordered throughput_msgs_s lat_p50_ms lat_p90_ms lat_p99_ms lat_p999_ms lat_max_ms "
    "lat_mean_ms lat_samples sent_p50_ms sent_p90_ms sent_p99_ms sent_p999_ms sent_max_ms "
    "sent_mean_ms server_cpu_s server_cpu_pct server_rss_mib_max server_connections_max "
    "bytes_down_per_msg bytes_up_per_msg overhead_down_per_msg overhead_up_per_msg "
    "http_requests_per_msg pub_bytes_up_per_msg pub_http_requests_per_msg reconnects "
    "client_cpu_s client_cpu_pct status warnings"
).split()

#: Samples kept per load point: real runs keep every delivery; the fixture keeps a
#: subsample so that it stays small (its README says so).
SAMPLES_PER_POINT = 150
ENVELOPE_BYTES = 52  # {"seq":N,"topic":"T","ts":NS,"data":""} around the payload


@dataclass(frozen=True)
class TransportModel:
    """Cost model of one transport: every summary value is computed from these."""

    lat_base_ms: float  # median latency with one subscriber
    lat_per_client_ms: float  # added median latency per subscriber (fan-out work)
    server_cpu_us_per_msg: float  # server CPU per delivered message
    client_cpu_us_per_msg: float  # load-generator CPU per delivered message
    rss_kib_per_conn: float
    overhead_down: float  # header / framing bytes per message, server -> client
    overhead_up: float  # bytes per message, client -> server (poll requests, masks)
    requests_per_msg: float  # HTTP requests per delivered message


#: Long polling pays a request per message; streams and WebSocket pay framing only.
MODELS = {
    "longpoll": TransportModel(1.6, 0.010, 62.0, 85.0, 28.0, 176.0, 148.0, 0.92),
    "sse": TransportModel(0.9, 0.004, 14.0, 22.0, 41.0, 21.0, 0.4, 0.0),
    "ndjson": TransportModel(0.9, 0.004, 13.0, 21.0, 40.0, 7.0, 0.4, 0.0),
    "websocket": TransportModel(0.7, 0.003, 9.0, 18.0, 56.0, 2.0, 0.5, 0.0),
}


@dataclass(frozen=True)
class RunModel:
    """What one synthetic run measured."""

    run_id: str
    scenario: str
    hostname: str
    clients: tuple[int, ...] = (10, 100, 500)
    rates: tuple[float, ...] = (10.0,)
    payload_bytes: int = 64
    transports: tuple[str, ...] = ("longpoll", "sse", "ndjson", "websocket")
    planned_transports: tuple[str, ...] | None = None  # the scenario's list (incomplete runs)
    duration_s: float = 3.0
    status: str = "complete"
    reason: str = ""
    models: dict = field(default_factory=lambda: dict(MODELS))
    finished_points: int | None = None  # stop after this many points (incomplete runs)
    lost: dict = field(default_factory=dict)  # (transport, clients, rate) -> lost messages
    client_cpu_pct: dict = field(default_factory=dict)  # (transport, clients, rate) -> override
    seed: int = 1
    started_at: str = "2026-11-24T21:00:00Z"
    ended_at: str = "2026-11-24T21:04:10Z"
    warnings: tuple[str, ...] = ()


def _quantiles(values: np.ndarray) -> dict[str, float]:
    q = np.quantile(values, [0.5, 0.9, 0.99, 0.999])
    return {
        "p50": q[0], "p90": q[1], "p99": q[2], "p999": q[3],
        "max": float(values.max()), "mean": float(values.mean()),
    }


def _point_rows(run: RunModel, rng: np.random.Generator):
    point = 0
    for transport in run.transports:
        for clients in run.clients:
            for rate in run.rates:
                if run.finished_points is not None and point >= run.finished_points:
                    return
                yield point, transport, clients, rate
                point += 1


def _build(run: RunModel):
    rng = np.random.default_rng(run.seed)
    rows, samples, load = [], [], []
    message_bytes = run.payload_bytes + ENVELOPE_BYTES
    for point, transport, clients, rate in _point_rows(run, rng):
        m = run.models[transport]
        key = (transport, clients, rate)
        sent = int(rate * run.duration_s)
        expected = sent * clients
        lost = int(run.lost.get(key, 0))
        delivered = expected - lost
        # Latency: lognormal around the model's median, one draw per kept sample.
        median = m.lat_base_ms + m.lat_per_client_ms * clients * (1 + rate / 200)
        n = min(SAMPLES_PER_POINT, delivered)
        lat = np.round(median * rng.lognormal(0.0, 0.45, size=n), 4)
        lat_sent = np.round(lat * 0.93, 4)
        q, qs = _quantiles(lat), _quantiles(lat_sent)
        server_cpu_s = delivered * m.server_cpu_us_per_msg * 1e-6 * rng.uniform(0.98, 1.02) + 0.04
        client_cpu_s = delivered * m.client_cpu_us_per_msg * 1e-6 * rng.uniform(0.98, 1.02) + 0.06
        client_pct = run.client_cpu_pct.get(key, 100 * client_cpu_s / run.duration_s)
        client_cpu_s = client_pct * run.duration_s / 100
        rss = 48.0 + clients * m.rss_kib_per_conn / 1024
        # Long polling batches under load: fewer requests and headers per message.
        batching = 1 + rate / 100 if transport == "longpoll" else 1.0
        over_down, over_up = m.overhead_down / batching, m.overhead_up / batching
        requests = m.requests_per_msg / batching + (clients / delivered if transport != "websocket" else 0)
        rows.append({
            "run_id": run.run_id, "scenario": run.scenario, "engine": "native",
            "transport": transport, "point": point, "repeat": 0, "clients": clients,
            "rate_msgs_s": rate, "payload_bytes": run.payload_bytes, "message_bytes": message_bytes,
            "delay_ms": 0.0, "keepalive": True, "pattern": "fanout", "upstream": "post",
            "duration_s": run.duration_s, "sent": sent, "expected": expected,
            "delivered": delivered, "lost": lost, "duplicated": 0, "reordered": 0,
            "throughput_msgs_s": round(delivered / run.duration_s, 3),
            **{f"lat_{k}_ms": round(float(v), 4) for k, v in q.items()},
            "lat_samples": delivered,
            **{f"sent_{k}_ms": round(float(v), 4) for k, v in qs.items()},
            "server_cpu_s": round(server_cpu_s, 4),
            "server_cpu_pct": round(100 * server_cpu_s / run.duration_s, 2),
            "server_rss_mib_max": round(rss, 2), "server_connections_max": clients + 1,
            "bytes_down_per_msg": round(message_bytes + over_down, 3),
            "bytes_up_per_msg": round(over_up, 3),
            "overhead_down_per_msg": round(over_down, 3), "overhead_up_per_msg": round(over_up, 3),
            "http_requests_per_msg": round(requests, 5),
            "pub_bytes_up_per_msg": 150.0 + message_bytes, "pub_http_requests_per_msg": 1.0,
            "reconnects": 0, "client_cpu_s": round(client_cpu_s, 4),
            "client_cpu_pct": round(client_pct, 2), "status": "ok", "warnings": "",
        })
        subscriber = rng.integers(0, clients, size=n)
        seq = np.sort(rng.integers(1, sent + 1, size=n))
        samples.append(pd.DataFrame({
            "point": point, "repeat": 0, "transport": transport,
            "subscriber": subscriber.astype("int32"), "seq": seq.astype("int64"),
            "latency_ms": lat, "latency_sent_ms": lat_sent,
            "recv_s": np.round((seq - 1) / rate + lat / 1000, 4),
        }))
        # Process samples at 10 Hz across warm-up (0.5 s), measurement and drain (0.5 s).
        t = np.round(np.arange(0, run.duration_s + 1.0, 0.1), 2)
        phase = np.where(t < 0.5, "warmup", np.where(t <= run.duration_s + 0.5, "measure", "drain"))
        for process, cpu_s, base_rss, conns in (
            ("server", server_cpu_s, rss, clients + 1),
            ("loadgen", client_cpu_s, 40.0 + clients * 0.02, clients + 1),
        ):
            cpu = np.round(np.clip((t - 0.5) / run.duration_s, 0, 1) * cpu_s, 3)
            load.append(pd.DataFrame({
                "point": point, "repeat": 0, "transport": transport, "process": process,
                "t_s": t, "cpu_user_s": np.round(cpu * 0.8, 3), "cpu_system_s": np.round(cpu * 0.2, 3),
                "rss_mib": np.round(np.minimum(base_rss, 40 + t * base_rss), 1),
                "open_files": conns + 12, "connections": conns, "phase": phase,
            }))
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return summary, samples, load


def write_run(run: RunModel, out: Path) -> Path:
    """Write meta.json, summary.csv, samples.parquet and load.parquet for `run` into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary, samples, load = _build(run)
    planned = run.planned_transports or run.transports
    points = [
        {"point": i, "transport": t, "clients": c, "rate_msgs_s": r,
         "payload_bytes": run.payload_bytes, "repeat": 0,
         "status": "done" if i < len(summary) else "not run"}
        for i, (t, c, r) in enumerate(
            (t, c, r) for t in planned for c in run.clients for r in run.rates)
    ]
    meta = {
        "schema_version": 2, "run_id": run.run_id, "status": run.status,
        "complete": run.status == "complete", "reason": run.reason,
        "scenario": {
            "name": run.scenario, "path": f"scenarios/{run.scenario}.toml",
            "parsed": {
                "name": run.scenario, "description": "SYNTHETIC fixture for the report tests",
                "transports": list(planned), "pattern": "fanout", "clients": list(run.clients),
                "rate": list(run.rates), "payload_bytes": [run.payload_bytes], "topics": 1,
                "upstream": "post", "arrival": "uniform", "warmup_s": 0.5,
                "duration_s": run.duration_s, "repeats": 1, "expect_loss": False, "seed": run.seed,
            },
        },
        "engine": "native", "started_at": run.started_at, "ended_at": run.ended_at,
        "clock": "CLOCK_MONOTONIC (time.monotonic_ns), one host",
        "python": "3.11.2 (synthetic)",
        "packages": {"aiohttp": "3.9.5", "websockets": "13.1", "uvloop": "0.21.0",
                     "httptools": "0.6.4", "duplexbench": "0.1.0"},
        "cpu_model": "Synthetic CPU 2-core @ 2.0 GHz (fixture, not a measurement)",
        "cpu_count": 2, "kernel": "6.1.0-synthetic", "hostname": run.hostname,
        "git": {"commit": "0000000000000000000000000000000000000000", "dirty": False},
        "affinity": {"server": [0], "loadgen": [1]},
        "gc": "gc.freeze() after warm-up in server and load generator",
        "inject": {"delay_ms": 0, "pad_bytes": 0},
        "warnings": list(run.warnings), "points": points,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    summary.to_csv(out / "summary.csv", index=False)
    if samples:
        pd.concat(samples, ignore_index=True).to_parquet(out / "samples.parquet", index=False)
        pd.concat(load, ignore_index=True).to_parquet(out / "load.parquet", index=False)
    return out


#: The committed fixtures: two complete runs to compare, one interrupted run.
FIXTURES = {
    "synthetic-a": RunModel("synthetic-a", "fanout-synthetic", "synthetic-host-a"),
    "synthetic-b": RunModel(
        "synthetic-b", "fanout-synthetic", "synthetic-host-b", seed=2,
        started_at="2026-11-24T22:00:00Z", ended_at="2026-11-24T22:04:05Z",
        # "After a change": WebSocket's server CPU per message drops by a third.
        models={**MODELS, "websocket": replace(MODELS["websocket"], server_cpu_us_per_msg=6.0)},
    ),
    "synthetic-incomplete": RunModel(
        "synthetic-incomplete", "rate-synthetic", "synthetic-host-a", clients=(20,),
        rates=(5.0, 50.0, 200.0), transports=("longpoll", "websocket"),
        planned_transports=("longpoll", "sse", "ndjson", "websocket"),
        status="incomplete", reason="interrupted (Ctrl-C) after 5 of 12 load points",
        finished_points=5, seed=3, ended_at="2026-11-24T21:01:40Z",
        lost={("longpoll", 20, 200.0): 37}, client_cpu_pct={("longpoll", 20, 200.0): 96.0},
        warnings=("interrupted: results hold the points finished before Ctrl-C",),
    ),
}

README = """# Report test fixtures: SYNTHETIC TEST DATA

These results directories are synthetic test data, not measurements. They were written by
`tests/report/make_fixture.py` from a simple cost model with seeded noise, in the exact results
schema of docs/DESIGN.md, for the report and notebook tests. `samples.parquet` keeps at most
{n} samples per load point (real runs keep every delivery). Regenerate with
`.venv/bin/python tests/report/make_fixture.py`.

- `synthetic-a`: fanout, 4 transports x 10/100/500 subscribers, complete.
- `synthetic-b`: the same scenario on another (synthetic) host, WebSocket server CPU lower.
- `synthetic-incomplete`: a rate sweep interrupted after 5 of 12 points, with lost messages
  and a saturated load generator.
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else ROOT / "results" / "fixtures"
    for name, run in FIXTURES.items():
        write_run(run, out / name)
    (out / "README.md").write_text(README.format(n=SAMPLES_PER_POINT))
    print(f"wrote {', '.join(FIXTURES)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
