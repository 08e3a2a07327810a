"""The trainer group: settings of Lightning's Trainer and of its DDP strategy.

The keys declared here are checked; any other real argument of `Trainer` passes as it is (Lightning
checks it), and a key that is none is refused. The accelerators and strategies are read from
Lightning's public registries; its precision values are declared here (Lightning keeps its list private).
"""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import Field
from pytorch_lightning.accelerators import AcceleratorRegistry
from pytorch_lightning.strategies import StrategyRegistry

from src.settings.types import NonNegativeInt, Number, PositiveFloat, PositiveInt, WritableDir

Precision = Literal[
    "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
    "transformer-engine", "transformer-engine-float16", "32", "16", "bf16", "64", 32, 16, 64,
]
Accelerator = Literal[("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))]
Strategy = Literal[("auto", *StrategyRegistry.available_strategies())]
Length = Annotated[int, Field(ge=-1)]  # -1 = no limit
LimitBatches = Annotated[Number, Field(ge=0, le=1)] | NonNegativeInt  # a fraction (float) or a count (int)


class Trainer(TypedDict, total=False):
    default_root_dir: WritableDir | None
    accelerator: Accelerator
    devices: PositiveInt | Literal["auto", -1] | list[NonNegativeInt]  # a count, all, or device indices
    num_nodes: PositiveInt
    strategy: Strategy  # or a `_target_` node (DDPStrategy below)
    sync_batchnorm: bool
    precision: Precision
    max_epochs: Length | None
    max_steps: Length
    min_epochs: NonNegativeInt | None
    min_steps: NonNegativeInt | None
    limit_train_batches: LimitBatches
    limit_val_batches: LimitBatches
    limit_test_batches: LimitBatches
    check_val_every_n_epoch: PositiveInt | None
    log_every_n_steps: PositiveInt
    gradient_clip_val: PositiveFloat | None
    deterministic: bool | Literal["warn"]
    enable_progress_bar: bool
    enable_model_summary: bool
    num_sanity_val_steps: Length


class DDPStrategy(TypedDict, total=False):
    process_group_backend: Literal["gloo", "nccl", "mpi"] | None
    find_unused_parameters: bool
    start_method: Literal["popen", "spawn", "fork", "forkserver"]


SCHEMAS = {"pytorch_lightning.Trainer": Trainer, "pytorch_lightning.strategies.DDPStrategy": DDPStrategy}
