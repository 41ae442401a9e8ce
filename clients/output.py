"""The two files a load generator leaves behind, written atomically.

``samples.parquet`` (one row per first delivery of a measured message) and
``counters.json`` are the whole interface to the runner (docs/DESIGN.md), so
they are written to a temporary name and renamed: a reader never sees half a
file, even when the load generator is killed while writing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .accounting import Samples

__all__ = ["SAMPLE_COLUMNS", "write_counters", "write_samples"]

SAMPLE_COLUMNS = ("subscriber", "seq", "index", "intended_ns", "sent_ns", "recv_ns")


def write_samples(path: Path, samples: Samples, start_ns: int, offsets_ns: np.ndarray) -> int:
    """Write the samples; ``intended_ns`` = start + the schedule offset of the index."""
    index = np.frombuffer(samples.index, dtype=np.int64).copy()
    offsets = np.asarray(offsets_ns, dtype=np.int64)
    valid = (index >= 0) & (index < len(offsets))
    intended = np.full(len(index), -1, dtype=np.int64)
    intended[valid] = start_ns + offsets[index[valid]]
    columns = {
        "subscriber": np.frombuffer(samples.subscriber, dtype=np.int64),
        "seq": np.frombuffer(samples.seq, dtype=np.int64),
        "index": index,
        "intended_ns": intended,
        "sent_ns": np.frombuffer(samples.sent_ns, dtype=np.int64),
        "recv_ns": np.frombuffer(samples.recv_ns, dtype=np.int64),
    }
    table = pa.table({name: pa.array(columns[name], type=pa.int64()) for name in SAMPLE_COLUMNS})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return len(index)


def write_counters(path: Path, counters: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(counters, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
