"""Config schemas (one per config group) and the few checks across keys, run before anything trains.

Settings are declared once, where they are used: our own builders, data modules, regularizers and
the monitor declare them in their signatures (types from `src/config/types.py`); third-party targets
(torch optimizers and schedulers, Lightning's Trainer, strategy and checkpointing) have schemas in
`optim.py`, `sched.py`, `trainer.py`, `callbacks.py`; the root keys, `logger` and `paths` in `root.py`.
`validation.py` picks each node's schema by its `_target_`; `checks.py` holds the checks across keys.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """Settings that are not allowed; the message has one line per problem: the key, its value, what is allowed."""


def validate(cfg: Any) -> None:
    """Raise one ConfigError listing every problem of a composed config (see `src/config/validation.py`)."""
    from src.config.validation import validate as validate_config

    validate_config(cfg)
