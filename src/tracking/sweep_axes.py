"""Which config keys vary within a Hydra multirun: the axes that tell its jobs apart.

A job sees only its own overrides (`model.batch_norm=True`), not the multirun's
(`model.batch_norm=true,false`), so the sweep callback (in the launching process) reads them from
the multirun's config and records them in the sweep file for the jobs' run names. Both sources of
a sweep count: the command line (`hydra.overrides.task`) and the sweeper's `params` (the grid of an
`experiment/` file, or the search space of the Optuna sweeper: `interval(...)`, `choice(...)`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig


def override_lines(config: DictConfig) -> list[str]:
    """The multirun's sweep definitions: sweeper params first (as `key=value`), then the command line."""
    params = config.hydra.sweeper.get("params") or {}
    return [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)


def varies(override: Any) -> bool:
    """Whether a parsed override takes more than one value: an interval or a glob always, a choice or a
    range when it has several (`choice(1)` and `seed=3` do not vary)."""
    if not override.is_sweep_override():
        return False
    if override.is_interval_sweep() or type(override.value()).__name__ == "Glob":
        return True
    values = override.value().list if override.is_choice_sweep() else list(override.sweep_iterator())
    return len({str(v) for v in values}) > 1


def varying_keys(lines: Iterable[str]) -> list[str]:
    """Keys (groups as `study/arm`) that vary, in the order first given; a later constant override of a
    key (the command line pinning an experiment's axis) takes it out again."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found: dict[str, bool] = {}
    for override in OverridesParser.create().parse_overrides(list(lines)):
        if not override.is_delete():
            found[override.key_or_group] = varies(override)
    return [key for key, varying in found.items() if varying]


def sweep_varying_keys(config: DictConfig) -> list[str]:
    """`varying_keys` of a multirun's config (the one the sweep callback gets at `on_multirun_start`)."""
    return varying_keys(override_lines(config))
