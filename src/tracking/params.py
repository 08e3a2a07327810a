"""What a run records about its configuration: flattened params, config artifacts, the git commit.

Params are the settings that decide what a run computes; per-run locations (its output folder, its
checkpoint folder, the data folder) are tags `location.<key>` instead: they differ in every run, so
as params they would fill the compare page's parallel coordinates and its "differing params" with
paths. The resolved config artifact (`config/config.yaml`) still holds everything.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.paths import PROJECT_ROOT
from src.tracking.client import MAX_PARAM_LENGTH
from src.tracking.redaction import scrub, scrub_tree
from src.tracking.short_forms import matches

LOCATIONS = ("paths.*", "callbacks.*.dirpath", "trainer.default_root_dir", "data.data_dir")  # tags, not params
LOCATION_TAG = "location."
MAX_TAG_LENGTH = 8000  # MLflow's limit for a tag value


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts/lists -> {'a.b.0': 'value'} with full string values."""
    out: dict[str, str] = {}
    if isinstance(data, Mapping):
        items = data.items()
    elif isinstance(data, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(data))
    else:
        return {prefix: str(data)}
    empty = True
    for key, value in items:
        empty = False
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    if empty and prefix:
        out[prefix] = "[]" if isinstance(data, (list, tuple)) else "{}"
    return out


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def is_location(key: str) -> bool:
    """A flattened key that says where a run reads or writes (`paths.output_dir`), not what it computes."""
    return matches(key, LOCATIONS)


def config_params(cfg: DictConfig) -> dict[str, str]:
    """The flattened resolved config as MLflow params, locations left out (`location_tags`), secrets
    hidden, values cut to MLflow's limit."""
    flat = scrub(flatten(OmegaConf.to_container(cfg, resolve=True)))
    return {k: v[:MAX_PARAM_LENGTH] for k, v in flat.items() if not is_location(k)}


def location_tags(cfg: DictConfig) -> dict[str, str]:
    """The per-run locations of the resolved config as tags `location.<key>`."""
    flat = scrub(flatten(OmegaConf.to_container(cfg, resolve=True)))
    return {f"{LOCATION_TAG}{k}": v[:MAX_TAG_LENGTH] for k, v in flat.items() if is_location(k)}


def log_config(mlflow_client, run_id: str, cfg: DictConfig, overrides: list[str], suffix: str = "") -> None:  # noqa: ANN001
    """The resolved config and the overrides as YAML artifacts under `config/` (secrets hidden)."""
    resolved = OmegaConf.create(scrub_tree(OmegaConf.to_container(cfg, resolve=True)))
    mlflow_client.log_text(run_id, OmegaConf.to_yaml(resolved), f"config/config{suffix}.yaml")
    mlflow_client.log_text(run_id, OmegaConf.to_yaml(OmegaConf.create(overrides)), f"config/overrides{suffix}.yaml")
