"""The complete per-step record of a run: one Parquet table under `health/`, and its one reader.

MLflow gets the statistics at the logging cadence; this record has every optimizer step and every
layer (columns in `docs/gradient_health.md`; the names are the MLflow metric keys, plus `step`,
`loss`, `skipped`). It is written so that a killed run loses at most its last flush window:

- at each flush the rows are appended to the current *part*, `health/parts/g<generation>-s<first step>.arrows`
  (an Arrow IPC stream: appending costs microseconds, a part cut short by a kill reads up to its last
  whole flush), and the part is uploaded again; after `PART_VALUES` values a new part begins;
- at the end of training the parts are consolidated, streamed part by part, into `health/record.parquet`.

A *generation* is one process's share of a run: 0, then +1 at every resume. A resumed run retrains
from its checkpoint, so a step can be in two generations' parts; the later generation holds the
run's truth from its first step on, and `consolidate` keeps each generation's rows only below the
first step of the next one. `read_record` reads `record.parquet`, or the parts of a run that was
killed before it consolidated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from src.monitor.stats import Summary

PART_VALUES = 2**18  # values (rows x columns, 1 MiB) a part holds before the next begins: bounds each upload
PART_NAME = re.compile(r"g(\d+)-s(\d+)\.arrows$")
RECORD_FILE = "record.parquet"
PARTS_DIR = "parts"
GLOBAL_COLUMNS = ("grad/nonfinite", "grad/global_norm", "grad/global_rms", "grad/global_rel",
                  "grad/first_last_ratio", "grad/depth_slope", "grad_penalty/global_norm")
LAYER_COLUMNS = ("grad_norm", "grad_rms", "grad_rel", "weight_norm", "grad_penalty")


def columns(summary: Summary, labels: list[str]) -> dict[str, np.ndarray]:
    """The record's columns for the rows of `summary` (float32 values; NaN where not measured)."""
    n = len(summary)
    f32 = np.float32
    cols: dict[str, np.ndarray] = {
        "step": summary.steps.astype(np.int64),
        "loss": summary.loss.astype(f32),
        "skipped": summary.skipped.astype(bool),
    }
    glob = (summary.nonfinite, summary.global_norm, summary.global_rms, summary.global_rel,
            summary.first_last_ratio, summary.depth_slope, summary.penalty_norm)
    cols.update({name: np.asarray(v, dtype=f32) for name, v in zip(GLOBAL_COLUMNS, glob, strict=True)})
    penalty = summary.layer_penalty if summary.layer_penalty is not None else np.full((n, len(labels)), np.nan)
    per_layer = (summary.layer_norm, summary.layer_rms, summary.layer_rel, summary.layer_weight, penalty)
    for prefix, values in zip(LAYER_COLUMNS, per_layer, strict=True):
        for j, label in enumerate(labels):
            cols[f"{prefix}/{label}"] = np.asarray(values[:, j], dtype=f32)
    return cols


class RecordWriter:
    """Appends flush blocks to the current part file in `folder`; `append` returns the file to upload.

    Args:
        folder: a local folder for the part files of this process.
        labels: layer labels in forward order; sizes: entries of each layer's weight (for RMS).
        generation: 0 for a new run, +1 at each resume (from the monitor's checkpointed state).
    """

    def __init__(self, folder: Path, labels: list[str], sizes: list[int], generation: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.labels, self.generation = list(labels), generation
        self.metadata = {b"gradreg": json.dumps({"layers": self.labels, "layer_sizes": list(sizes)}).encode()}
        self._limit = max(1, PART_VALUES // (3 + len(GLOBAL_COLUMNS) + len(LAYER_COLUMNS) * len(labels)))
        self._count = 0
        self._path: Path | None = None
        self._file: Any = None
        self._stream: Any = None

    def append(self, summary: Summary) -> Path | None:
        """Append the rows to the current part (a new one when it is full); return its path (None: no rows)."""
        if not len(summary):
            return None
        table = pa.table(columns(summary, self.labels)).replace_schema_metadata(self.metadata)
        if self._stream is None or self._count >= self._limit:
            self.close()
            self._path = self.folder / f"g{self.generation:03d}-s{int(summary.steps[0]):09d}.arrows"
            self._file = open(self._path, "wb")  # noqa: SIM115 - kept open: the part grows flush by flush
            self._stream = pa.ipc.new_stream(self._file, table.schema)
        self._stream.write_table(table)
        self._file.flush()
        self._count += len(summary)
        return self._path

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._file.close()
        self._stream, self._file, self._count = None, None, 0


def _parts(folder: Path) -> list[tuple[int, int, Path]]:
    found = []
    for path in Path(folder).glob("*.arrows"):
        match = PART_NAME.search(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return sorted(found)


def read_part(path: Path) -> pa.Table | None:
    """A part's whole flushes (a part cut short by a kill ends at its last whole one); None when empty."""
    batches, schema = [], None
    try:
        with pa.ipc.open_stream(path) as reader:
            schema = reader.schema
            for batch in reader:
                batches.append(batch)
    except (OSError, pa.ArrowInvalid):
        pass
    return pa.Table.from_batches(batches, schema) if batches and schema is not None else None


def _kept_tables(folder: Path) -> Iterator[pa.Table]:
    """Each part's rows that hold the run's truth (see the module docstring), in step order."""
    parts = _parts(folder)
    for gen, _, path in parts:
        later = [first for g, first, _ in parts if g > gen]
        table = read_part(path)
        if table is None:
            continue
        if later:
            steps = table.column("step").to_numpy()
            table = table.filter(pa.array(steps < min(later)))
        if table.num_rows:
            yield table


def consolidate(folder: Path, out_file: Path) -> Path | None:
    """Stream the parts in `folder` into one Parquet file (see the module docstring); None without parts."""
    writer = None
    try:
        for table in _kept_tables(folder):
            if writer is None:
                writer = pq.ParquetWriter(out_file, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return out_file if writer is not None else None


def read_record(path: str | Path) -> Any:
    """A run's per-step record as a pandas DataFrame, one row per optimizer step in step order.

    `path`: a `record.parquet`, a folder holding one, or a folder of parts (a run killed before its end,
    or `health/` as downloaded). `df.attrs["layers"]` / `["layer_sizes"]`: layer labels in forward order
    and their weights' entry counts.
    """
    path = Path(path)
    if path.is_dir() and (path / RECORD_FILE).is_file():
        path = path / RECORD_FILE
    elif path.is_dir() and (path / PARTS_DIR).is_dir():
        path = path / PARTS_DIR
    elif path.is_file() and path.suffix == ".arrows":
        path = path.parent
    if path.is_dir():
        tables = list(_kept_tables(path))
        if not tables:
            raise FileNotFoundError(f"no health record parts in {path}")
        table = pa.concat_tables(tables, promote_options="default")
    else:
        table = pq.read_table(path)
    frame = table.to_pandas().sort_values("step", kind="stable").reset_index(drop=True)
    meta = json.loads((table.schema.metadata or {}).get(b"gradreg", b"{}"))
    frame.attrs.update(meta)
    return frame


def download_record(mlflow_client: Any, run_id: str, dst: str | Path) -> Any | None:
    """The record of an MLflow run (its `health/` artifacts downloaded into `dst`), or None when it has none."""
    names = {a.path for a in mlflow_client.list_artifacts(run_id, "health")}
    if not names:
        return None
    wanted = "health/record.parquet" if "health/record.parquet" in names else "health/parts"
    local = Path(mlflow_client.download_artifacts(run_id, wanted, str(dst)))
    return read_record(local)
