"""Which process of a multi-process (DDP) job this is, and how the ranks share one MLflow run.

With `strategy: ddp` Lightning starts the extra ranks by running the same command line again
(`python -m src.train <overrides> hydra.run.dir=<rank 0's dir>`). Rank 0 creates the MLflow run
*before* `trainer.fit` launches them and exports its id in `GRADREG_RUN_ID`; a re-launched rank
finds it there, attaches to that run, and never creates a run, logs params or ends the run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

RUN_ID_ENV = "GRADREG_RUN_ID"  # set by rank 0 for the ranks Lightning re-launches
SUBPROCESS_STRATEGIES = ("ddp", "ddp_find_unused_parameters_false", "ddp_find_unused_parameters_true")


def is_launched_rank_zero() -> bool:
    """False in any process a launcher started as another rank (RANK, or LOCAL_RANK/NODE_RANK, non-zero)."""
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        value = os.environ.get(var, "0") or "0"
        if value.isdigit() and int(value) != 0:
            return False
    return True


def is_relaunched_rank() -> bool:
    """True in a DDP rank that Lightning started from rank 0's command line."""
    return bool(os.environ.get(RUN_ID_ENV)) and not is_launched_rank_zero()


def shared_run_id() -> str | None:
    return os.environ.get(RUN_ID_ENV) or None


def relaunches_argv(trainer_cfg: Mapping[str, Any]) -> bool:
    """Does this trainer config start its extra processes by re-running `sys.argv`?"""
    strategy = trainer_cfg.get("strategy", "auto")
    if isinstance(strategy, Mapping):
        target = str(strategy.get("_target_", ""))
        return target.endswith("DDPStrategy") and strategy.get("start_method", "popen") == "popen"
    return str(strategy) in SUBPROCESS_STRATEGIES
