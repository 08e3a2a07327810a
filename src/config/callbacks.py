"""The callbacks group: settings of Lightning's ModelCheckpoint (the project's `RunCheckpoint` takes the same).
Other callbacks (a test's injected `+callbacks.x._target_=...`) are checked by their arguments' names."""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import Field

from src.settings.types import NonNegativeInt, Text, WritableDir


class ModelCheckpoint(TypedDict, total=False):
    dirpath: WritableDir | None
    filename: Text | None
    monitor: Text | None  # the metric that decides "best"
    mode: Literal["min", "max"]
    save_top_k: Annotated[int, Field(ge=-1)]  # -1 = keep all
    save_last: bool | Literal["link"] | None
    auto_insert_metric_name: bool
    save_weights_only: bool
    every_n_epochs: NonNegativeInt | None
    every_n_train_steps: NonNegativeInt | None
    verbose: bool
    enable_version_counter: bool  # false: one last.ckpt, never last-v1.ckpt (a run's folder holds only its own)


SCHEMAS = {"pytorch_lightning.callbacks.ModelCheckpoint": ModelCheckpoint,
           "src.lifecycle.last_checkpoint.RunCheckpoint": ModelCheckpoint}
