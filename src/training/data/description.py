"""What identifies a data set and its splits, as a data module describes itself for the run's record.

A description is cheap by design: it never reads the examples. What identifies them is a file's
digest (computed once per file version and remembered), or the settings of the code that generates
them. How each split is drawn (seed, fractions) identifies the split. `src/tracking/datasets.py`
turns this into MLflow dataset inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIGEST_CACHE = ".digests.json"  # in the data folder: {path: {size, mtime_ns, sha256}}
SOURCE_KINDS = ("http", "file", "code")


@dataclass(frozen=True)
class Split:
    """One split: how many examples, and what selects them out of the data set."""

    size: int
    selection: Mapping[str, Any] = field(default_factory=dict)  # e.g. {seed, val_fraction, test_fraction}


@dataclass(frozen=True)
class DataDescription:
    """A data set as a run records it.

    Attributes:
        name: the `data=` choice (`mnist5k`, `cifar10`, ...).
        source: where the examples come from: a URL, a file path, or the generating class.
        source_kind: `http`, `file` or `code`.
        identity: what identifies the examples before any split (file digests, generator settings,
            the image size they are padded or resized to).
        splits: `train`, `val`, `test` -> `Split`.
        image_shape: (channels, height, width) of one example as the model sees it.
        num_classes: number of labels.
    """

    name: str
    source: str
    source_kind: str
    identity: Mapping[str, Any]
    splits: Mapping[str, Split]
    image_shape: tuple[int, int, int]
    num_classes: int

    def __post_init__(self) -> None:
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(f"source_kind={self.source_kind!r} is not allowed; it must be one of {SOURCE_KINDS}")


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """The file's sha256, remembered in `<cache_dir>/.digests.json` by path, size and modification time:
    CIFAR-10's 180 MB are read once, not at every run. Without `cache_dir` the file is hashed each time
    (fine for the bundled megabyte-sized files)."""
    path = Path(path).resolve()
    stat = path.stat()
    key, version = str(path), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache_file = Path(cache_dir) / DIGEST_CACHE if cache_dir is not None else None
    cache = _read_cache(cache_file) if cache_file else {}
    hit = cache.get(key, {})
    if all(hit.get(k) == v for k, v in version.items()) and "sha256" in hit:
        return hit["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    if cache_file is not None and cache_file.parent.is_dir():
        cache[key] = {**version, "sha256": sha}
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        try:
            tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
            tmp.replace(cache_file)  # atomic: parallel jobs never read half a cache (a lost update is recomputed)
        except OSError:
            tmp.unlink(missing_ok=True)
    return sha
