"""Checks on a composed config that must pass before anything trains or any run is created.

Each failure is one `ConfigError` naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import inspect

from hydra.utils import get_method
from omegaconf import DictConfig


class ConfigError(ValueError):
    """A setting has a value that is not allowed."""


def check_model_knobs(cfg: DictConfig) -> None:
    """Every key under `model` must be an argument of the model's builder."""
    builder = get_method(cfg.model._target_)
    allowed = set(inspect.signature(builder).parameters) - {"dropout"}
    for key in cfg.model:
        if key.startswith("_"):
            continue
        if key not in allowed:
            raise ConfigError(
                f"model.{key} is not a setting of model {cfg.model._target_.rsplit('.', 1)[-1]}; "
                f"its settings are {sorted(allowed)}"
            )


def validate(cfg: DictConfig) -> None:
    check_model_knobs(cfg)
