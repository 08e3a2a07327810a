"""Checks on a composed config that must pass before anything trains or any run is created.

Each failure is one `ConfigError` naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import inspect

from hydra.utils import get_class, get_method
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


def check_reg(cfg: DictConfig) -> None:
    """Every selected regularizer: known settings with allowed values; no second, hidden weight decay.

    `optim.weight_decay` must stay 0 when a weight regularizer (l1, l2, elasticnet) is selected:
    torch's optimizers would decay every parameter (biases and norm layers too) on top of the
    selected penalty, and the run would not measure what its `reg` tag says.
    """
    from src.regularizers import Regularizer, setting_error

    for name, node in (cfg.get("reg") or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"reg.{name} is not a regularizer config; choose options of the reg group (reg=[l1,l2])")
        try:
            cls = get_class(node._target_)
        except Exception as exc:  # noqa: BLE001 - hydra wraps import errors in several types
            raise ConfigError(f"reg.{name}._target_={node._target_!r} cannot be imported: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            raise ConfigError(f"reg.{name}._target_={node._target_!r} is not a src.regularizers.Regularizer")
        allowed = set(inspect.signature(cls).parameters)
        for key, value in node.items():
            if key.startswith("_"):
                continue
            if key not in allowed:
                raise ConfigError(
                    f"reg.{name}.{key} is not a setting of {cls.__name__}; its settings are {sorted(allowed)}"
                )
            message = setting_error(f"reg.{name}", key, value)
            if message:
                raise ConfigError(message)
        decay = (cfg.get("optim") or {}).get("weight_decay", 0) or 0
        if cls.penalizes_weights and decay != 0:
            raise ConfigError(
                f"optim.weight_decay={decay!r} is not allowed together with reg.{name}; it must be 0 "
                "(use reg=l2 reg.l2.mode=decoupled for decoupled weight decay, or reg.l2.mode=penalty for L2)"
            )


def validate(cfg: DictConfig) -> None:
    check_model_knobs(cfg)
    check_reg(cfg)
