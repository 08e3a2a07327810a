"""`resume=<run_id>` alone: the run's own overrides come back, the new ones win.

Every run stores the overrides it was started with (`config/overrides.yaml`) and each resume the
ones typed for it (`config/overrides-resume<n>.yaml`, also tagged `resume.<n>.overrides`). Inside
the running `@hydra.main` app, `compose_for_resume` reads them and composes the config again with
Hydra's Compose API (the app's `GlobalHydra` is initialized, so `hydra.compose` sees the same
config search path), from:

    first-start overrides, then each earlier resume's, then the ones typed now

where a later value of the same key wins. An override that added a key (`+k=v`) and is changed
later keeps adding it (`++k=new`); a later `~k` removes a key an earlier override added. `resume`
and `ckpt_path` are never taken from the stored lists. Nothing here writes to the run.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.lifecycle.ranks import is_relaunched_rank
from src.tracking.runs import RUN_CONTROL_KEYS

log = logging.getLogger(__name__)


def stored_overrides(mlflow_client: Any, run: Any) -> list[str]:
    """The overrides of the run's first start and of each of its resumes, in order ([] when not stored)."""
    count = int(run.data.tags.get("resume_count", "0") or 0)
    names = ["config/overrides.yaml", *(f"config/overrides-resume{k}.yaml" for k in range(1, count + 1))]
    out: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                local = mlflow_client.download_artifacts(run.info.run_id, name, tmp)
            except Exception:  # noqa: BLE001 - a run from before overrides were stored: nothing to restore
                continue
            out += [str(item) for item in (OmegaConf.to_container(OmegaConf.load(local)) or [])]
    return out


def merge_overrides(stored: list[str], typed: list[str]) -> list[str]:
    """Stored then typed overrides, one per key, a later value winning (see the module docstring)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    parser = OverridesParser.create()
    merged: dict[str, tuple[Any, str]] = {}
    for origin, lines in (("stored", stored), ("typed", typed)):
        for line in lines:
            try:
                override = parser.parse_override(line)
            except Exception as err:  # noqa: BLE001 - e.g. a stored value whose secret was hidden
                from src.lifecycle.resume import ResumeError

                raise ResumeError(f"resume: the {origin} override {line!r} cannot be read ({err}); pass it again "
                                  "on the command line in Hydra's syntax. The run was not changed.") from None
            key = override.get_key_element().lstrip("+~")
            if origin == "stored" and override.key_or_group in RUN_CONTROL_KEYS:
                continue
            before = merged.get(key)
            added_before = before is not None and before[0].type in (OverrideType.ADD, OverrideType.FORCE_ADD)
            if override.type == OverrideType.DEL and added_before:
                del merged[key]
                continue
            if override.type == OverrideType.CHANGE and added_before:
                line = f"++{line}"
            merged[key] = (override, line)
    return [line for _, line in merged.values()]


def compose_for_resume(cfg: DictConfig) -> DictConfig:
    """The config for `resume=<run_id>`: composed again with the run's stored overrides; else `cfg` as is."""
    if not cfg.get("resume") or cfg.get("ckpt_path"):
        return cfg  # nothing to restore; or both set, which validation refuses with its own message
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    from src.lifecycle.resume import ResumeError, get_run_or_none
    from src.tracking.client import client
    from src.tracking.redaction import REDACTED, redact_uri

    if not HydraConfig.initialized():
        return cfg  # composed by a test or a notebook: the caller passes every override itself
    run_id = str(cfg.resume)
    mlflow_client = client()
    run = get_run_or_none(mlflow_client, run_id)
    if run is None:
        store = redact_uri(mlflow_client.tracking_uri)
        raise ResumeError(f"resume={run_id!r}: no such run in the MLflow store {store}")
    hydra_cfg = HydraConfig.get()
    typed = list(hydra_cfg.overrides.task)
    if not any(line.split("=", 1)[0].lstrip("+~") == "resume" for line in typed):
        typed.append(f"resume={run_id}")  # set by the job itself: a requeued SLURM job (src/lifecycle/requeue.py)
    stored = stored_overrides(mlflow_client, run)
    merged = merge_overrides(stored, typed)
    typed_keys = {line.split("=", 1)[0].lstrip("+~") for line in typed}
    hidden = [line for line in merged if REDACTED in line and line.split("=", 1)[0].lstrip("+~") not in typed_keys]
    if hidden:
        raise ResumeError(f"resume={run_id!r}: the stored overrides {hidden} had secrets hidden when they were "
                          "recorded; pass them again on the command line. The run was not changed.")
    restored = [line for line in merged if line not in typed]
    if restored and not is_relaunched_rank():  # said once, by the process that owns the run
        log.info("Resuming run %s with its own overrides: %s", run_id, " ".join(restored))
    return compose(config_name=hydra_cfg.job.config_name, overrides=merged)

