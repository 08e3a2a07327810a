"""The learning-rate schedule of a run, fitted to the run's real length.

`conf/sched/cosine.yaml` leaves `T_max` null: the horizon is the run's length, read from the trainer
settings here, so a short run (`trainer.max_steps=80 trainer.max_epochs=-1`) needs no key the user
never set. The rule:

- `trainer.max_steps >= 1`: the steps set the length. The schedule is stepped after every optimizer
  step and `T_max = max_steps` (optimizer steps); if `max_epochs` ends training first, the rate has
  not reached `eta_min` yet.
- otherwise: stepped once per epoch, `T_max = max_epochs` (epochs).

A `T_max` given in the config is kept as it is (epochs, stepped per epoch). Other schedules (`step`)
are stepped per epoch. The factory carries `interval` (`"step"` | `"epoch"`), which
`ClassificationModule.configure_optimizers` hands to Lightning.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

HORIZON_KEY = "T_max"  # the cosine's horizon; null = the run's length


def run_length(trainer: DictConfig) -> tuple[int, str]:
    """(length, unit): (max_steps, "step") when max_steps sets it, else (max_epochs, "epoch")."""
    steps = int(trainer.get("max_steps", -1) or -1)
    if steps >= 1:
        return steps, "step"
    return int(trainer.get("max_epochs") or 1), "epoch"


def build_scheduler(cfg: DictConfig) -> Any | None:
    """A partial that takes the optimizer (None for `sched=none`), with its stepping `interval`."""
    node = cfg.get("sched")
    if not node or not node.get("_target_"):
        return None
    interval = "epoch"
    if HORIZON_KEY in node and node[HORIZON_KEY] is None:
        node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
        length, interval = run_length(cfg.trainer)
        with open_dict(node):
            node[HORIZON_KEY] = length
    factory = instantiate(node)
    factory.interval = interval  # a functools.partial takes attributes
    return factory
