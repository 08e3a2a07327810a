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


def check_monitor(cfg: DictConfig) -> None:
    """The gradient-health monitor's settings: known keys, policies `stop|continue`, positive limits."""
    node = cfg.get("monitor")
    if not node or "_target_" not in node:
        return  # monitor=off
    from src.callbacks.health_events import Thresholds, check_settings

    allowed = set(inspect.signature(get_method(node._target_)).parameters) - {"thresholds"}
    allowed |= set(Thresholds.__dataclass_fields__)
    for key in node:
        if not key.startswith("_") and key not in allowed:
            raise ConfigError(f"monitor.{key} is not a monitor setting; its settings are {sorted(allowed)}")
    try:
        check_settings({k: v for k, v in node.items() if not k.startswith("_")})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def validate(cfg: DictConfig) -> None:
    check_model_knobs(cfg)
    check_monitor(cfg)
