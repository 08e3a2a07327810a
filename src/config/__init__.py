"""The top floor: validation of a composed config, one schema per config group, and the checks across keys.

Only the entry point (and tests) import it; it imports models, training and lifecycle to ask them
about their settings, so nothing below may import it (a test holds it so). How settings are declared
(types, the signature checker, `ConfigError`) is the lowest floor, `src/settings/`.

Our own builders, data modules, regularizers and the monitor declare their settings in their
signatures; third-party targets (torch optimizers and schedulers, Lightning's Trainer, strategy and
checkpointing) have schemas in `optim.py`, `sched.py`, `trainer.py`, `callbacks.py`; the root keys,
`logger` and `paths` in `root.py`. `validation.py` picks each node's schema by its `_target_`;
`checks.py` holds the checks across keys.
"""

from __future__ import annotations

from typing import Any


def validate(cfg: Any) -> None:
    """Raise one ConfigError listing every problem of a composed config (see `src/config/validation.py`)."""
    from src.config.validation import validate as validate_config

    validate_config(cfg)
