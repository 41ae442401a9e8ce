"""Synthetic runs for the regression gate's tests: realistic noise, known truth.

Latency on a shared machine is not i.i.d.: it is skewed (log-normal), autocorrelated (a busy
moment delays many deliveries in a row) and every repeat sits at its own level (whatever else
ran at the time). ``latency_samples`` models all three, so "no change" tests face the noise that
makes naive gates cry wolf, and "+2 ms" tests face the same noise plus the real shift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from duplexbench.measure.results import RunWriter

__all__ = ["Model", "latency_samples", "write_run"]


def latency_samples(rng: np.random.Generator, n: int, median_ms: float = 1.0,
                    level_sd: float = 0.08, sigma: float = 0.35, rho: float = 0.9,
                    shift_ms: float = 0.0) -> np.ndarray:
    """One repeat: log-normal latencies, AR(1) in log space, a per-repeat level, a shift."""
    level = np.exp(rng.normal(0.0, level_sd))
    innovations = rng.normal(0.0, sigma * np.sqrt(1 - rho**2), n)
    log = np.empty(n)
    log[0] = rng.normal(0.0, sigma)
    for i in range(1, n):  # n <= a few thousand: a Python loop is fast enough
        log[i] = rho * log[i - 1] + innovations[i]
    return median_ms * level * np.exp(log) + shift_ms


@dataclass(frozen=True)
class Model:
    """What a synthetic run looks like; every field has a "healthy" default."""

    transports: tuple[str, ...] = ("sse", "websocket")
    repeats: int = 3
    samples: int = 2000
    delay_ms: dict = field(default_factory=dict)  # transport -> injected latency shift
    pad_bytes: dict = field(default_factory=dict)  # transport -> extra bytes per message
    lost: dict = field(default_factory=dict)  # transport -> lost messages per repeat
    requests: dict = field(default_factory=dict)  # transport -> HTTP requests per message
    cpu: dict = field(default_factory=dict)  # transport -> factor on server CPU per message
    clients: int = 20
    median_ms: float = 1.0
    status: str = "complete"
    schema_version: int | None = None
    echo_us: float = 50.0  # hot-loop echo
    at_rate_us: float | None = 240.0  # echo at the scenario's rate; None = an older run
    validity: dict = field(default_factory=dict)  # transport -> one class, or one per repeat
    disturb: dict = field(default_factory=dict)  # transport -> (repeat, factor on its latencies)
    drop_columns: tuple[str, ...] = ()


def write_run(path: Path, model: Model = Model(), seed: int = 0) -> Path:
    """A complete results directory in the real schema, via the real RunWriter."""
    rng = np.random.default_rng(seed)
    meta = {"scenario": {"name": "ci"}, "cpu_model": "synthetic", "git": {"commit": "abc1234"},
            "inject": {"delay_ms": 0, "pad_bytes": 0},
            "calibration": {"tcp_echo_rtt_us_p50": model.echo_us, "samples": 1000}}
    if model.at_rate_us is not None:
        meta["calibration"].update(echo_at_rate_us_p50=model.at_rate_us,
                                   echo_at_rate={"rate_hz": 200.0, "samples": 250})
    writer = RunWriter(path, meta, latest=False).start()
    for point, transport in enumerate(model.transports):
        for repeat in range(model.repeats):
            lat = latency_samples(rng, model.samples, model.median_ms,
                                  shift_ms=model.delay_ms.get(transport, 0.0))
            disturbed, by = model.disturb.get(transport, (None, 1.0))
            if repeat == disturbed:  # a neighbour's burst over the whole repeat
                lat = lat * by
            sent = lat * 0.9
            pad = model.pad_bytes.get(transport, 0)
            lost = model.lost.get(transport, 0)
            req = model.requests.get(transport, 0.001)
            per_request = 170 * req  # response headers, amortised over the messages of a poll
            noise = rng.normal(0, 1)
            validity = model.validity.get(transport, "ok")
            if not isinstance(validity, str):
                validity = validity[repeat]
            row = {
                "run_id": path.name, "scenario": "ci", "engine": "native",
                "transport": transport, "point": point, "repeat": repeat,
                "clients": model.clients, "rate_msgs_s": 200, "payload_bytes": 64,
                "message_bytes": 118, "delay_ms": 0, "keepalive": True,
                "pattern": "fanout", "upstream": "post", "duration_s": 4.0,
                "sent": 800, "expected": 16000, "delivered": 16000 - lost, "lost": lost,
                "duplicated": 0, "reordered": 0, "late": 0,
                "throughput_msgs_s": 4000 + 5 * noise,
                **{f"lat_p{k}_ms": float(np.percentile(lat, q))
                   for k, q in (("50", 50), ("90", 90), ("99", 99), ("999", 99.9))},
                "lat_max_ms": float(lat.max()), "lat_mean_ms": float(lat.mean()),
                "lat_samples": len(lat),
                **{f"sent_p{k}_ms": float(np.percentile(sent, q))
                   for k, q in (("50", 50), ("90", 90), ("99", 99), ("999", 99.9))},
                "sent_max_ms": float(sent.max()), "sent_mean_ms": float(sent.mean()),
                "server_cpu_s": 1.2 + 0.02 * noise, "server_cpu_pct": 30 + 0.5 * noise,
                "server_rss_mib_max": 60 + 0.3 * noise, "server_connections_max": model.clients + 1,
                # Like the real servers: the pad is not part of message_bytes, so it is overhead.
                "bytes_down_per_msg": 126 + pad + per_request + 0.3 * noise,
                "bytes_up_per_msg": 0.2 + 90 * req,
                "overhead_down_per_msg": 8 + pad + per_request + 0.3 * noise,
                "overhead_up_per_msg": 0.2 + 90 * req,
                "http_requests_per_msg": req, "pub_bytes_up_per_msg": 250,
                "pub_http_requests_per_msg": 1.0, "reconnects": 0,
                "client_cpu_s": 1.0, "client_cpu_pct": 25, "status": "ok", "warnings": "",
                # Per delivered message: every repeat at its own level (the machine's state),
                # shared by the A/B pair (levels seeded by repeat), plus each run's own 2 %.
                "server_cpu_us_per_msg": 75.0 * model.cpu.get(transport, 1.0)
                * float(np.exp(np.random.default_rng(1000 + repeat).normal(0, 0.13)
                               + rng.normal(0, 0.02))),
                "client_cpu_us_per_msg": 60.0,
                "validity": validity, "validity_notes": "",
            }
            for column in model.drop_columns:
                row.pop(column, None)
            samples = pd.DataFrame({"subscriber": np.arange(len(lat)) % model.clients,
                                    "seq": np.arange(len(lat)) // model.clients,
                                    "latency_ms": lat, "latency_sent_ms": sent,
                                    "recv_s": np.linspace(0, 4, len(lat))})
            writer.add_point(row, samples)
    writer.finish(model.status, "" if model.status == "complete" else "interrupted")
    if model.schema_version is not None:
        import json

        meta_file = path / "meta.json"
        meta = json.loads(meta_file.read_text())
        meta["schema_version"] = model.schema_version
        meta_file.write_text(json.dumps(meta))
    return path
