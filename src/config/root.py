"""The root keys of `conf/train.yaml` and the groups without a `_target_`: logger and paths."""

from __future__ import annotations

from typing import TypedDict

from src.settings.types import NonNegativeFloat, PositiveFloat, Seed, Text, WritableDir


class Root(TypedDict, total=False):
    seed: Seed
    reg_strength: NonNegativeFloat  # λ of every weight regularizer unless reg.<name>.strength is given
    test: bool
    optimized_metric: Text | None
    resume: Text | None  # an MLflow run id
    ckpt_path: Text | None
    skip_bad_batches: bool  # with resume: from the last good checkpoint, without the examples forensics named


class Logger(TypedDict, total=False):
    experiment_name: Text
    run_name: Text | None
    rows_interval_s: PositiveFloat  # seconds between two sends of the step metrics (src/tracking/logger.py)


class Paths(TypedDict, total=False):
    root_dir: WritableDir
    data_dir: WritableDir
    log_dir: WritableDir
    output_dir: WritableDir
