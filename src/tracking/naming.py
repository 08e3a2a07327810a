"""Run names: short, readable, from the config group choices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig


def reg_label(cfg: DictConfig) -> str:
    """The composed regularizer choice: `l2+dropout`, or `none`."""
    reg = cfg.get("reg") or {}
    return "+".join(reg.keys()) if reg else "none"


def run_name(cfg: DictConfig, choices: Mapping[str, Any]) -> str:
    """`<model>-<reg>-<optim>-s<seed>`, e.g. `vgg19-elasticnet-sgd-s0`."""
    if cfg.logger.get("run_name"):
        return str(cfg.logger.run_name)
    model = choices.get("model", "model")
    optim = choices.get("optim", "optim")
    return f"{model}-{reg_label(cfg)}-{optim}-s{cfg.seed}"
