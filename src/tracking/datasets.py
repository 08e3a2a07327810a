"""The data a run trained and was tested on, as MLflow dataset inputs: the runs table's Dataset column,
its Datasets filter, and each run's Datasets section.

One input per split, all named after the `data=` choice, with the split as MLflow's context tag
(`train`, `val`, `test`). The digest (8 hex characters, as MLflow's own) hashes what identifies the
split: the data module's description (file digests or generator settings, the image size) and how
the split is drawn (seed, fractions). It is computed without reading the examples, so it costs
microseconds per run; two runs share a digest exactly when they saw the same examples. The profile
says the split's size; the schema, one example's tensor shape.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from src.training.data.description import DataDescription

CONTEXT_TAG = "mlflow.data.context"  # the input tag MLflow's UI shows as the dataset's context


def split_digest(description: DataDescription, split: str) -> str:
    """8 hex characters identifying one split's examples (not their order)."""
    record = {"data": description.identity, "split": split, "selection": description.splits[split].selection}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:8]


def mlflow_source(description: DataDescription) -> Any:
    """MLflow's source object for where the examples come from (a URL, a file, or the generating code)."""
    from mlflow.data.sources import CodeDatasetSource, HTTPDatasetSource, LocalArtifactDatasetSource

    if description.source_kind == "http":
        return HTTPDatasetSource(url=description.source)
    if description.source_kind == "file":
        return LocalArtifactDatasetSource(description.source)
    return CodeDatasetSource(tags={"mlflow.source.name": description.source})


def tensor_schema(description: DataDescription) -> Any:
    """One example as the model sees it: a float32 image (channels, height, width) and an int64 label."""
    import numpy as np
    from mlflow.types import Schema, TensorSpec

    return Schema([
        TensorSpec(np.dtype(np.float32), (-1, *description.image_shape), "image"),
        TensorSpec(np.dtype(np.int64), (-1,), "label"),
    ])


def dataset_inputs(description: DataDescription) -> list[Any]:
    """An `mlflow.entities.DatasetInput` per split, through MLflow's public `MetaDataset`."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source, schema = mlflow_source(description), tensor_schema(description)
    inputs = []
    for split, info in description.splits.items():
        meta = MetaDataset(source, name=description.name, digest=split_digest(description, split), schema=schema)
        profile = {"num_rows": info.size, "num_classes": description.num_classes, **{f"drawn_by.{k}": v for k, v in
                                                                                      info.selection.items()}}
        entity = Dataset(**{**meta.to_dict(), "profile": json.dumps(profile, default=str)})
        inputs.append(DatasetInput(entity, tags=[InputTag(CONTEXT_TAG, split)]))
    return inputs


def log_dataset_inputs(mlflow_client: Any, run_id: str, description: DataDescription) -> None:
    """One `log_inputs` call for all splits. Logging the same inputs again (a resumed run) changes nothing."""
    mlflow_client.log_inputs(run_id, datasets=dataset_inputs(description))


class LogDatasetInputs(pl.Callback):
    """Records the trainer's data module as the run's dataset inputs, once its splits exist (`on_fit_start`,
    after Lightning's `setup`); on rank zero only. A data module without a `describe()` is skipped."""

    def __init__(self, mlflow_client: Any, run_id: str) -> None:
        self.client, self.run_id = mlflow_client, run_id

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        describe = getattr(trainer.datamodule, "describe", None)
        if not callable(describe):
            return
        try:
            description = describe()
        except NotImplementedError:  # a data module of its own that does not say what it holds
            return
        log_dataset_inputs(self.client, self.run_id, description)
