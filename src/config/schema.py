"""What each config value may be: one rule per key, found by dotted-key pattern.

The rule types live in `src/config/rules.py`; every failure reads
`<key>=<value> is not allowed; it must be <what is allowed>`. Patterns are `fnmatch` globs over
dotted keys (`reg.*.strength` matches `reg.l1.strength` and `reg.elasticnet.strength`).

A config group added later plugs in with one call, next to its own code:

    register_rules({"monitor.on_nonfinite": Choice(("stop", "continue")), "monitor.every_n_steps": Int(min=1)})
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from src.config.rules import AnyOf, Bool, Choice, Int, Pair, Predicate, Real, Rule, Text, WritableDir

__all__ = [  # the rule types are re-exported so a group's code needs one import
    "AnyOf", "Bool", "Choice", "Int", "Pair", "Predicate", "Real", "Rule", "Text", "WritableDir",
    "register_rules", "rule_for",
]


PROBABILITY = Real(min=0.0, max=1.0, max_open=True)
FRACTION = Real(min=0.0, max=1.0, max_open=True)
POSITIVE = Real(min=0.0, min_open=True)
NON_NEGATIVE = Real(min=0.0)
LIMIT_BATCHES = AnyOf((Real(min=0.0, max=1.0), Int(min=0)))  # Lightning: a fraction (float) or a count (int)


def _code_defined_rules() -> dict[str, Rule]:
    """Rules whose allowed values are read from the code that uses them, so they never drift."""
    from typing import get_args

    from lightning_fabric.connector import _PRECISION_INPUT
    from pytorch_lightning.accelerators import AcceleratorRegistry
    from pytorch_lightning.strategies import StrategyRegistry

    from src.models.common import ACTIVATIONS, INITS
    from src.models.lenet import POOLS
    from src.training.regularizers import SETTING_RULES

    precisions = tuple(v for literal in get_args(_PRECISION_INPUT) for v in get_args(literal))
    return {
        "trainer.accelerator": Choice(("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))),
        "trainer.strategy": Choice(("auto", *StrategyRegistry.available_strategies())),
        "trainer.precision": Choice(precisions),
        "model.in_channels": Int(min=1),
        "model.num_classes": Int(min=2),
        "model.image_size": Int(min=1),
        "model.activation": Choice(tuple(sorted(ACTIVATIONS))),
        "model.pool": Choice(tuple(sorted(POOLS))),
        "model.init": Choice(tuple(INITS)),
        "model.init_std": POSITIVE,
        "model.width": POSITIVE,
        "model.small_input": Bool(),
        "model.batch_norm": Bool(),
        # reg: the regularizers' own table, so the messages match theirs word for word
        **{f"reg.*.{key}": Predicate(allowed, what) for key, (allowed, what) in SETTING_RULES.items()},
    }


RULES: dict[str, Rule] = {
    # root
    "seed": Int(min=0, max=2**32 - 1),  # numpy's seed range
    "test": Bool(),
    "optimized_metric": Text(nullable=True),
    "resume": Text(nullable=True),
    "ckpt_path": Text(nullable=True),
    # data
    "data.data_dir": WritableDir(),
    "data.batch_size": Int(min=1),
    "data.eval_batch_size": Int(min=1, nullable=True),
    "data.num_workers": Int(min=0),
    "data.seed": Int(min=0, max=2**32 - 1),
    "data.val_fraction": FRACTION,
    "data.test_fraction": FRACTION,
    "data.in_channels": Int(min=1),
    "data.num_classes": Int(min=2),
    "data.image_size": Int(min=1),
    "data.num_samples": Int(min=1),
    "data.noise": NON_NEGATIVE,
    "data.download": Bool(),
    "data.download_timeout": POSITIVE,
    # optim
    "optim.lr": POSITIVE,
    "optim.momentum": Real(min=0.0, max=1.0, max_open=True),
    "optim.dampening": Real(min=0.0, max=1.0),
    "optim.nesterov": Bool(),
    "optim.weight_decay": NON_NEGATIVE,
    "optim.betas": Pair(Real(min=0.0, max=1.0, max_open=True)),
    "optim.eps": POSITIVE,
    "optim.amsgrad": Bool(),
    # sched
    "sched.T_max": Int(min=1),
    "sched.eta_min": NON_NEGATIVE,
    "sched.step_size": Int(min=1),
    "sched.gamma": Real(min=0.0, max=1.0, min_open=True),
    # trainer
    "trainer.default_root_dir": WritableDir(nullable=True),
    "trainer.devices": AnyOf((Int(min=1), Choice(("auto",)), Int(min=-1, max=-1))),
    "trainer.num_nodes": Int(min=1),
    "trainer.strategy.process_group_backend": Choice(("gloo", "nccl", "mpi"), nullable=True),
    "trainer.strategy.find_unused_parameters": Bool(),
    "trainer.strategy.start_method": Choice(("popen", "spawn", "fork", "forkserver")),
    "trainer.sync_batchnorm": Bool(),
    "trainer.max_epochs": Int(min=-1, nullable=True),
    "trainer.max_steps": Int(min=-1),
    "trainer.limit_train_batches": LIMIT_BATCHES,
    "trainer.limit_val_batches": LIMIT_BATCHES,
    "trainer.limit_test_batches": LIMIT_BATCHES,
    "trainer.check_val_every_n_epoch": Int(min=1, nullable=True),
    "trainer.log_every_n_steps": Int(min=1),
    "trainer.gradient_clip_val": Real(min=0.0, min_open=True, nullable=True),
    "trainer.deterministic": AnyOf((Bool(), Choice(("warn",)))),
    "trainer.enable_progress_bar": Bool(),
    "trainer.enable_model_summary": Bool(),
    "trainer.num_sanity_val_steps": Int(min=-1),
    # callbacks (any ModelCheckpoint under any name)
    "callbacks.*.dirpath": WritableDir(nullable=True),
    "callbacks.*.filename": Text(nullable=True),
    "callbacks.*.auto_insert_metric_name": Bool(),
    "callbacks.*.monitor": Text(nullable=True),
    "callbacks.*.mode": Choice(("min", "max")),
    "callbacks.*.save_top_k": Int(min=-1),
    "callbacks.*.save_last": AnyOf((Bool(), Choice(("link",))), nullable=True),
    "callbacks.*.every_n_epochs": Int(min=0, nullable=True),
    "callbacks.*.every_n_train_steps": Int(min=0, nullable=True),
    # logger
    "logger.experiment_name": Text(),
    "logger.run_name": Text(nullable=True),
    # paths
    "paths.root_dir": WritableDir(),
    "paths.data_dir": WritableDir(),
    "paths.log_dir": WritableDir(),
    "paths.output_dir": WritableDir(),
    # monitor (src/callbacks/gradient_health.py; limits documented in src/callbacks/health_events.py)
    "monitor.every_n_steps": Int(min=1),
    "monitor.rel_update_every_n_steps": Int(min=0),
    "monitor.nonfinite_count": Choice(("tensors", "values")),
    "monitor.on_nonfinite": Choice(("stop", "continue")),
    "monitor.on_divergence": Choice(("stop", "continue")),
    "monitor.test_after_divergence": Bool(),
    "monitor.plots": Bool(),
    "monitor.max_loss": POSITIVE,
    "monitor.max_grad_norm": POSITIVE,
    "monitor.min_first_last_ratio": POSITIVE,
    "monitor.min_layer_grad_norm": POSITIVE,
    "monitor.vanishing_patience": Int(min=1),
    "monitor.divergence_window": Int(min=1),
    "monitor.divergence_factor": Real(min=1.0, min_open=True),
    "monitor.divergence_min_loss": NON_NEGATIVE,
    # model=mlp
    "model.depth": Int(min=1),
}
_LAZY_LOADED = False


def register_rules(rules: Mapping[str, Rule]) -> None:
    """Add or replace rules (pattern -> rule); for config groups that live in other files."""
    RULES.update(rules)


def rules() -> dict[str, Rule]:
    """All rules; the code-defined enums are read on first use (importing them costs seconds)."""
    global _LAZY_LOADED
    if not _LAZY_LOADED:
        RULES.update({k: v for k, v in _code_defined_rules().items() if k not in RULES})
        _LAZY_LOADED = True
    return RULES


def rule_for(key: str) -> Rule | None:
    """The rule of a dotted key: an exact entry first, else the first matching pattern."""
    table = rules()
    if key in table:
        return table[key]
    return next((rule for pattern, rule in table.items() if fnmatchcase(key, pattern)), None)


def problem(key: str, value: Any) -> str | None:
    """The message for a value its rule refuses, or None when it is allowed (or has no rule)."""
    rule = rule_for(key)
    if rule is None or rule.accepts(value):
        return None
    return f"{key}={value!r} is not allowed; it must be {rule.explain()}"
