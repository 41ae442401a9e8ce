"""The results directory: ``results/<run-id>/`` written so a crash never corrupts it.

Every file is written to a temporary name in the same directory, fsynced and
renamed over the old one (``os.replace`` is atomic on POSIX), so a reader
(the report, the notebook, a CI step) sees either the old or the new file,
never half of one. :class:`RunWriter` rewrites ``summary.csv`` after every
load point and writes that point's samples and process series once, to
``samples/<point>.parquet`` and ``load/<point>.parquet`` (so a long sweep
never rewrites or holds earlier points), while ``meta.json`` says ``running``:
a run killed half-way still holds valid results for the points it finished
and says it is not complete. :func:`load_run` is the one reader everyone uses;
it tolerates added or missing optional columns (schema_version 1 grows by
adding columns).
"""

from __future__ import annotations

import io
import json
import math
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .. import SCHEMA_VERSION

__all__ = [
    "LOAD_COLUMNS",
    "RUN_STATUSES",
    "Run",
    "SUMMARY_DTYPES",
    "RunError",
    "RunWriter",
    "SAMPLES_COLUMNS",
    "SUMMARY_COLUMNS",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "is_complete",
    "load_run",
    "new_run_id",
    "point_file_name",
    "read_point_files",
    "update_latest",
    "utc_now",
]

#: summary.csv columns, in order (DESIGN.md "Results"). Readers must tolerate more.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "run_id", "scenario", "engine", "transport", "point", "repeat", "clients",
    "rate_msgs_s", "payload_bytes", "message_bytes", "delay_ms", "keepalive", "pattern",
    "upstream", "duration_s", "sent", "expected", "delivered", "lost", "late", "duplicated",
    "reordered", "throughput_msgs_s",
    "lat_p50_ms", "lat_p90_ms", "lat_p99_ms", "lat_p999_ms", "lat_max_ms", "lat_mean_ms",
    "lat_samples",
    "sent_p50_ms", "sent_p90_ms", "sent_p99_ms", "sent_p999_ms", "sent_max_ms", "sent_mean_ms",
    "server_cpu_s", "server_cpu_pct", "server_cpu_tick_s", "server_rss_mib_max",
    "server_connections_max",
    "bytes_down_per_msg", "bytes_up_per_msg", "overhead_down_per_msg", "overhead_up_per_msg",
    "ip_bytes_down_per_msg", "ip_bytes_up_per_msg", "segments_down_per_msg",
    "segments_up_per_msg",
    "http_requests_per_msg", "pub_bytes_up_per_msg", "pub_http_requests_per_msg",
    "reconnects", "client_cpu_s", "client_cpu_pct", "client_cpu_tick_s", "loadgen_procs",
    "loadgen_cores", "status", "validity", "validity_notes", "warnings",
    # Real infrastructure (duplexbench/extensions.py): nginx in the path; engine may be "browser".
    "proxy", "proxy_buffering", "proxy_accel_header", "proxy_gzip", "proxy_cpu_s",
    "proxy_cpu_pct",
    # Server processes on the port and their broker (duplexbench/broker/extension.py): 1, none
    # = the one-process server. Dimensions of a point, like clients.
    "workers", "broker",
    # The HTTP version and server stack (duplexbench/http2, docs/http2.md).
    "http", "streams_per_connection", "stack", "ws_over",
    # CPU per delivered message (measure/metrics.py cpu_us_per_msg): what the regression gate
    # judges server cost by (empty in runs recorded before them).
    "server_cpu_us_per_msg", "client_cpu_us_per_msg",
)

#: Columns read back as text: an HTTP version "2" is a name, not the number 2.0.
SUMMARY_DTYPES = {"http": str}

#: samples.parquet columns (one row per delivery).
SAMPLES_COLUMNS: tuple[str, ...] = (
    "point", "repeat", "transport", "subscriber", "seq", "latency_ms", "latency_sent_ms",
    "recv_s",
)

#: load.parquet columns (process samples at >= 10 Hz).
LOAD_COLUMNS: tuple[str, ...] = (
    "point", "repeat", "transport", "process", "t_s", "cpu_user_s", "cpu_system_s", "rss_mib",
    "open_files", "connections", "phase", "cpu_sched_s",
)

RUN_STATUSES = ("running", "complete", "incomplete", "failed")

META = "meta.json"
SUMMARY = "summary.csv"
SAMPLES = "samples.parquet"
LOAD = "load.parquet"
#: Schema 2: one Parquet file per point in these folders (read back as one dataset).
SAMPLES_DIR = "samples"
LOAD_DIR = "load"
LATEST = "latest"


class RunError(ValueError):
    """A directory that is not (or not yet) a duplexbench run."""


# ---------------------------------------------------------------------------
# Atomic writes


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same dir, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory: os.replace is only atomic within one file system.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    _fsync_dir(path.parent)


def _discard(tmp: str | Path) -> None:
    """Remove a temporary name that never got renamed into place (it may be gone already)."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """JSON with NaN/inf as null (strict JSON), numpy scalars and paths converted."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible everywhere, and optional.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    if hasattr(value, "tolist"):  # numpy arrays
        return _jsonable(value.tolist())
    return str(value)


#: Stored as float32: the ms/s values come from integer nanoseconds and float32 keeps
#: 0.1 ns at 1 ms and 1 µs at 10 s, while halving files (baselines are committed).
_FLOAT32_COLUMNS = ("latency_ms", "latency_sent_ms", "recv_s")


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    frame = frame.astype({c: "float32" for c in _FLOAT32_COLUMNS if c in frame.columns})
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False, compression="zstd")
    except (TypeError, ValueError):  # pyarrow's ArrowInvalid/ArrowTypeError subclass these
        # A column mixing types (ints and text from different producers) cannot be
        # stored as is; storing it as text beats losing every sample of the run.
        mixed = [c for c in frame.columns if frame[c].dtype == object]
        frame = frame.astype({c: str for c in mixed})
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Run ids and the latest link


def utc_now() -> str:
    """ISO 8601 UTC timestamp with seconds, e.g. ``2026-11-24T22:35:01Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(scenario_name: str, root: str | Path = "results",
               now: datetime | None = None) -> str:
    """``20261124-223501-quick``; a short random suffix when ``root/<id>`` exists."""
    now = now or datetime.now(timezone.utc)
    run_id = f"{now.astimezone(timezone.utc):%Y%m%d-%H%M%S}-{scenario_name}"
    root = Path(root)
    candidate = run_id
    while (root / candidate).exists():
        candidate = f"{run_id}-{secrets.token_hex(2)}"
    return candidate


def update_latest(run_dir: Path) -> Path:
    """Point ``<parent>/latest`` at ``run_dir`` (relative link, swapped atomically)."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{secrets.token_hex(4)}.tmp"
    os.symlink(run_dir.name, tmp)  # relative: the results tree can be moved or copied
    try:
        if link.is_dir() and not link.is_symlink():
            raise RunError(f"{link} is a real directory; not replacing it with a link")
        os.replace(tmp, link)
    except BaseException:
        _discard(tmp)
        raise
    return link


# ---------------------------------------------------------------------------
# Writing a run


def is_complete(meta: dict) -> bool:
    """True only for a run that finished every point (status complete)."""
    return meta.get("status") == "complete" and meta.get("complete") is True


class RunWriter:
    """Writes one run directory, point by point.

    ``start()`` writes meta.json (status ``running``); ``add_point()`` appends a
    summary row (summary.csv rewritten: small), writes the point's samples and
    load series to their own files (never rewritten), and meta.json (still
    ``running``); ``finish()`` writes the final status and moves the ``latest``
    link. Memory stays bounded: only summary rows are kept.
    """

    def __init__(self, run_dir: str | Path, meta: dict, *, latest: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.meta: dict = dict(meta)
        #: False for baselines and fixtures, whose parent must not gain a `latest` link.
        self.latest = latest
        self.rows: list[dict] = []
        self._started = False
        self._finished = False

    @property
    def points_done(self) -> int:
        return len(self.rows)

    def start(self) -> "RunWriter":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        meta = self.meta
        meta["schema_version"] = SCHEMA_VERSION
        meta.setdefault("run_id", self.run_dir.name)
        meta["status"] = "running"
        meta["complete"] = False
        meta.setdefault("reason", "")
        meta.setdefault("started_at", utc_now())
        meta["ended_at"] = None
        meta.setdefault("warnings", [])
        meta["points"] = []
        meta["points_done"] = 0
        self._started = True
        self._write_meta()
        return self

    def add_point(self, row: dict, samples: pd.DataFrame | None = None,
                  load: pd.DataFrame | None = None) -> None:
        self._check_open()
        row = dict(row)
        self.rows.append(row)
        ident = {k: row[k] for k in ("point", "repeat", "transport") if k in row}
        name = point_file_name(ident)
        # One file per point, written once: a long sweep never rewrites (or holds in
        # memory) the samples of the points before it.
        if samples is not None and len(samples):
            atomic_write_bytes(self.run_dir / SAMPLES_DIR / name,
                               _parquet_bytes(_with_ident(samples, ident)))
        if load is not None and len(load):
            atomic_write_bytes(self.run_dir / LOAD_DIR / name,
                               _parquet_bytes(_with_ident(load, ident)))
        self.meta["points"].append({k: row.get(k) for k in _POINT_KEYS if k in row})
        self.meta["points_done"] = len(self.rows)
        self._write_summary()
        self._write_meta()

    def add_warning(self, text: str) -> None:
        self._check_open()
        self.meta["warnings"].append(str(text))
        self._write_meta()

    def finish(self, status: str = "complete", reason: str = "") -> Path:
        """Final meta.json and ``latest`` link; returns the run directory."""
        if status not in ("complete", "incomplete", "failed"):
            raise ValueError(f"finish(status={status!r}): expected complete, incomplete or failed")
        if not self._started:
            self.start()
        if not self.rows:  # a header-only summary still makes the dir loadable
            self._write_summary()
        self.meta["status"] = status
        self.meta["complete"] = status == "complete"
        self.meta["reason"] = reason
        self.meta["ended_at"] = utc_now()
        self.meta["points_done"] = len(self.rows)
        self._write_meta()
        self._finished = True
        if self.latest:
            try:
                update_latest(self.run_dir)
            except (OSError, RunError) as exc:
                # The results are safe; only the convenience link failed.
                self.meta["warnings"].append(f"could not update the 'latest' link: {exc}")
                self._write_meta()
        return self.run_dir

    def _check_open(self) -> None:
        if not self._started:
            raise RuntimeError("RunWriter.start() must be called before adding to the run")
        if self._finished:
            raise RuntimeError("RunWriter.finish() was already called for this run")

    def _write_meta(self) -> None:
        atomic_write_json(self.run_dir / META, self.meta)

    def _write_summary(self) -> None:
        summary = pd.DataFrame(self.rows)
        extra = [c for c in summary.columns if c not in SUMMARY_COLUMNS]
        summary = summary.reindex(columns=[*SUMMARY_COLUMNS, *extra])
        atomic_write_text(self.run_dir / SUMMARY, summary.to_csv(index=False))


def point_file_name(ident: dict) -> str:
    """``007-websocket-r1.parquet``: one point's file under samples/ and load/."""
    point = int(ident.get("point", 0) or 0)
    return f"{point:03d}-{ident.get('transport', 'x')}-r{int(ident.get('repeat', 0) or 0)}.parquet"


#: What meta.json lists for each finished point.
_POINT_KEYS = ("point", "repeat", "transport", "clients", "rate_msgs_s", "payload_bytes",
               "delay_ms", "keepalive", "status")


def _with_ident(frame: pd.DataFrame, ident: dict) -> pd.DataFrame:
    """Add point/repeat/transport columns when the producer left them out."""
    missing = {k: v for k, v in ident.items() if k not in frame.columns}
    if not missing:
        return frame
    frame = frame.copy()
    for position, (key, value) in enumerate(missing.items()):
        frame.insert(position, key, value)
    return frame


# ---------------------------------------------------------------------------
# Reading a run


@dataclass(frozen=True)
class Run:
    """One results directory, loaded. Samples and load series are read on demand."""

    path: Path
    meta: dict = field(repr=False)
    summary: pd.DataFrame = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def complete(self) -> bool:
        return is_complete(self.meta)

    def samples(self) -> pd.DataFrame:
        """Every point's samples as one frame (empty, with the standard columns, when none)."""
        return self._parquet(SAMPLES, SAMPLES_DIR, SAMPLES_COLUMNS)

    def load(self) -> pd.DataFrame:
        """Every point's process samples as one frame (empty when none)."""
        return self._parquet(LOAD, LOAD_DIR, LOAD_COLUMNS)

    def _parquet(self, name: str, folder: str, columns: tuple[str, ...]) -> pd.DataFrame:
        if name not in self._cache:
            frame = read_point_files(self.path, name, folder)
            if frame is None:
                frame = pd.DataFrame(columns=list(columns))
            if "rss_mb" in frame.columns and "rss_mib" not in frame.columns:
                frame = frame.assign(rss_mib=frame["rss_mb"] * 1e6 / 2**20)  # schema 1: MB
            self._cache[name] = frame
        return self._cache[name]


def read_point_files(run_dir: Path, single: str, folder: str) -> pd.DataFrame | None:
    """``folder/*.parquet`` (schema 2) plus a whole-run ``single`` file (schema 1), as one frame."""
    frames = []
    if (run_dir / single).exists():
        frames.append(pd.read_parquet(run_dir / single))
    if (run_dir / folder).is_dir():
        frames.extend(pd.read_parquet(file) for file in sorted((run_dir / folder).glob("*.parquet")))
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory (or the ``latest`` link); raises :class:`RunError`."""
    given = Path(run_dir)
    path = given.resolve()
    if not path.is_dir():
        raise RunError(f"{given}: no such results directory")
    meta_file = path / META
    if not meta_file.exists():
        hint = ""
        if (path / LATEST).exists():
            hint = f"; did you mean {given / LATEST}?"
        raise RunError(f"{given}: not a duplexbench run (no {META}){hint}")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{given}: {META} is unreadable: {exc}") from None
    if not isinstance(meta, dict) or "schema_version" not in meta:
        raise RunError(f"{given}: {META} is not duplexbench metadata (no schema_version)")
    summary_file = path / SUMMARY
    if summary_file.exists() and summary_file.stat().st_size:
        summary = pd.read_csv(summary_file, dtype=SUMMARY_DTYPES)
    else:
        summary = pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    return Run(path=path, meta=meta, summary=_normalise_summary(summary))


def _normalise_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Standard columns first (missing ones as NA), extra columns kept after them."""
    extra = [c for c in summary.columns if c not in SUMMARY_COLUMNS]
    summary = summary.reindex(columns=[*SUMMARY_COLUMNS, *extra])
    if "server_rss_mb_max" in summary.columns and summary["server_rss_mib_max"].isna().all():
        # schema 1 wrote MB (10^6 bytes); every reader now uses MiB.
        summary["server_rss_mib_max"] = summary["server_rss_mb_max"] * 1e6 / 2**20
    for text_column in ("warnings", "status", "validity_notes"):
        # An empty CSV cell reads back as NaN; these columns are text.
        summary[text_column] = summary[text_column].astype(object).where(
            summary[text_column].notna(), "")
    if len(summary) and summary["validity"].isna().any():
        from .validity import classify  # runs written before schema 2 have none

        judged = [classify(row) for row in summary.to_dict("records")]
        summary["validity"] = [j.validity for j in judged]
        summary["validity_notes"] = [j.notes for j in judged]
    return summary
