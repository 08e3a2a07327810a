"""The checks across keys: settings that are each allowed but not together. They run once every
single value is allowed (`src/config/validation.py`); each returns its problems, one line each."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from hydra.utils import get_object
from omegaconf import DictConfig

STOPPING = ("on_nonfinite", "on_exploding", "on_divergence", "on_vanishing", "on_stalled")  # may end a run early


def training_has_an_end(cfg: DictConfig) -> list[str]:
    """max_epochs >= 1 or max_steps >= 1: training must end, and must train at all."""
    trainer = cfg.get("trainer") or {}
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if epochs is None or epochs >= 1 or steps >= 1:
        return []
    why = "nothing would train" if 0 in (epochs, steps) else "training would never end"
    return [f"trainer.max_epochs={epochs} and trainer.max_steps={steps} are both unusable ({why}); "
            "set trainer.max_epochs >= 1 or trainer.max_steps >= 1"]


def split_leaves_training_data(cfg: DictConfig) -> list[str]:
    data = cfg.get("data") or {}
    val, test = data.get("val_fraction", 0), data.get("test_fraction", 0)
    if val + test < 1:
        return []
    return [f"data.val_fraction={val} + data.test_fraction={test} is not allowed; the sum must be < 1"]


def one_way_to_resume(cfg: DictConfig) -> list[str]:
    resume, ckpt = cfg.get("resume"), cfg.get("ckpt_path")
    if resume and ckpt:
        return [f"resume={resume!r} and ckpt_path={ckpt!r} are both set; give one (resume finds the checkpoint)"]
    if ckpt and not Path(ckpt).is_file():
        return [f"ckpt_path={ckpt!r} is not allowed; it must be an existing checkpoint file"]
    return []


def no_relaunching_ddp_in_a_multirun(cfg: DictConfig) -> list[str]:
    """Lightning's `ddp` re-runs `sys.argv` for the other ranks; inside a Hydra multirun that re-runs the sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from src.lifecycle.ranks import relaunches_argv

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if not (multirun and relaunches_argv(cfg.get("trainer") or {})):
        return []
    return ["trainer.strategy=ddp re-launches the command line for each extra process, which inside a Hydra "
            "multirun (-m) would start the whole sweep again; run multi-process jobs one at a time (no -m)"]


def no_weight_decay_beside_a_weight_regularizer(cfg: DictConfig) -> list[str]:
    """`optim.weight_decay` must stay 0 when a weight regularizer (l1, l2, elasticnet) is selected: torch's
    optimizers would decay every parameter (biases and norm layers too) on top of the selected penalty, and
    the run would not measure what its `reg` tag says."""
    from src.training.regularizers import Regularizer

    problems = []
    decay = (cfg.get("optim") or {}).get("weight_decay", 0) or 0
    for name, node in (cfg.get("reg") or {}).items():
        cls = get_object(node._target_)
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            problems.append(f"reg.{name}._target_={node._target_!r} is not a {Regularizer.__module__}.Regularizer")
        elif cls.penalizes_weights and decay != 0:
            problems.append(
                f"optim.weight_decay={decay!r} is not allowed together with reg.{name}; it must be 0 "
                "(use reg=l2 reg.l2.mode=decoupled for decoupled weight decay, or reg.l2.mode=penalty for L2)"
            )
    return problems


def a_diverged_run_can_stop(cfg: DictConfig) -> list[str]:
    """Lightning ignores `trainer.should_stop` until min_epochs/min_steps are done, so with either above 0
    the monitor's `stop` could not end a run gone NaN or diverged."""
    monitor, trainer = cfg.get("monitor") or {}, cfg.get("trainer") or {}
    if "_target_" not in monitor:
        return []
    defaults = inspect.signature(get_object(monitor._target_)).parameters
    stopping = [f"monitor.{k}=stop" for k in STOPPING
                if monitor.get(k, getattr(defaults.get(k), "default", None)) == "stop"]
    minimums = [f"trainer.{k}={trainer[k]}" for k in ("min_epochs", "min_steps") if (trainer.get(k) or 0) > 0]
    if not (stopping and minimums):
        return []
    return [f"{' and '.join(minimums)} is not allowed together with {' and '.join(stopping)}: Lightning trains on "
            "until the minimum is reached, so a run gone NaN or diverged could not stop; set the minimum to 0 "
            "or the policy to continue"]


CHECKS: list[Callable[[DictConfig], list[str]]] = [
    training_has_an_end, split_leaves_training_data, one_way_to_resume, no_relaunching_ddp_in_a_multirun,
    no_weight_decay_beside_a_weight_regularizer, a_diverged_run_can_stop,
]


def cross_key_problems(cfg: DictConfig) -> list[str]:
    return [problem for check in CHECKS for problem in check(cfg)]
