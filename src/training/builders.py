"""Turn a composed config into objects: data module, LightningModule, callbacks, trainer."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import Logger
from torch import nn

from src.training.module import ClassificationModule
from src.training.schedules import build_scheduler


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    return instantiate(cfg.data)


def build_regularizers(cfg: DictConfig) -> list[Any]:
    """The selected regularizer objects, in config order (none by default)."""
    return [instantiate(node) for node in (cfg.get("reg") or {}).values()]


def build_net(cfg: DictConfig, **extra: Any) -> nn.Module:
    return instantiate(cfg.model, **extra)


def build_module(cfg: DictConfig) -> ClassificationModule:
    regularizers = build_regularizers(cfg)
    net_kwargs: dict[str, Any] = {}
    for reg in regularizers:  # structural regularizers (dropout) change the network
        net_kwargs.update(reg.network_kwargs() if hasattr(reg, "network_kwargs") else {})
    return ClassificationModule(
        net=build_net(cfg, **net_kwargs),
        optimizer=instantiate(cfg.optim),
        scheduler=build_scheduler(cfg),
        num_classes=cfg.data.num_classes,
        regularizers=regularizers,
    )


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """Every node under `cfg.callbacks`, then the gradient-health monitor (`cfg.monitor`; `monitor=off` has none)."""
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values() if node and "_target_" in node]
    monitor = cfg.get("monitor")
    if monitor and "_target_" in monitor:
        callbacks.append(instantiate(monitor))
    return callbacks


def build_trainer(cfg: DictConfig, logger: Logger, callbacks: list[pl.Callback]) -> pl.Trainer:
    """The configured Trainer with the job's logger and callbacks; `trainer.enable_progress_bar=false` drops
    the progress bar of the callbacks group (Lightning refuses a bar callback on a trainer without one)."""
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
    return instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
