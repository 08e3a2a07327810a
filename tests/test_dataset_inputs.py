"""Data sets as MLflow inputs: each data module describes its splits cheaply (file digests remembered,
generator settings), and a run's inputs, read through MlflowClient, name the data, its split as context,
a digest that changes exactly when the examples do, and the split sizes; the runs search filters by them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from src.tracking.datasets import CONTEXT_TAG, log_dataset_inputs, split_digest
from src.training.data import DigitsDataModule, MNIST5kDataModule, MNISTDataModule, SyntheticDataModule
from src.training.data.description import DIGEST_CACHE, file_sha256
from tests.conftest import FAST
from tests.mlflow_reads import all_runs
from tests.test_data import write_tiny_mnist


def inputs_by_context(run) -> dict[str, object]:  # noqa: ANN001
    return {next(t.value for t in i.tags if t.key == CONTEXT_TAG): i.dataset for i in run.inputs.dataset_inputs}


def synthetic(**kwargs) -> SyntheticDataModule:  # noqa: ANN003
    dm = SyntheticDataModule(num_samples=64, in_channels=1, image_size=8, **kwargs)
    dm.setup("fit")
    return dm


def test_describe_needs_the_splits() -> None:
    with pytest.raises(RuntimeError, match="data=synthetic: describe\\(\\) needs setup\\(\\) first"):
        SyntheticDataModule(num_samples=64).describe()


def test_digests_change_exactly_when_the_examples_do() -> None:
    base = synthetic(seed=0).describe()
    assert base == synthetic(seed=0).describe()  # same settings, same description
    digests = {split: split_digest(base, split) for split in base.splits}
    assert len(set(digests.values())) == 3 and all(re.fullmatch(r"[0-9a-f]{8}", d) for d in digests.values())
    for other in (synthetic(seed=1), synthetic(seed=0, noise=0.5), synthetic(seed=0, val_fraction=0.2)):
        assert split_digest(other.describe(), "train") != digests["train"]
    sizes = {split: info.size for split, info in base.splits.items()}
    dm = synthetic(seed=0)
    assert sizes == {"train": len(dm.train_set), "val": len(dm.val_set), "test": len(dm.test_set)}


def test_bundled_sets_are_identified_by_their_files(data_dir: Path) -> None:
    digits = DigitsDataModule()
    digits.setup("fit")
    described = digits.describe()
    assert described.source.endswith("digits.csv.gz") and described.source_kind == "file"
    assert described.identity["sha256"] == file_sha256(Path(described.source))
    mnist5k = MNIST5kDataModule(data_dir=str(data_dir))
    mnist5k.setup("fit")
    described = mnist5k.describe()
    assert described.source.endswith("mnist_5k.csv.gz")
    assert {k: v.size for k, v in described.splits.items()} == {"train": 3500, "val": 500, "test": 1000}


def test_file_digests_are_remembered_until_the_file_changes(tmp_path: Path) -> None:
    data = tmp_path / "train-images"
    data.write_bytes(b"x" * 1000)
    first = file_sha256(data, tmp_path)
    cache = json.loads((tmp_path / DIGEST_CACHE).read_text())
    cache[str(data.resolve())]["sha256"] = "remembered"  # a cached value is used without reading the file
    (tmp_path / DIGEST_CACHE).write_text(json.dumps(cache))
    assert file_sha256(data, tmp_path) == "remembered"
    data.write_bytes(b"y" * 1001)
    os.utime(data, ns=(1, 1))
    second = file_sha256(data, tmp_path)
    assert second not in (first, "remembered") and len(second) == 64


def test_torchvision_sets_name_their_download_and_official_test_split(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path)
    described = []
    for seed in (0, 1):
        dm = MNISTDataModule(data_dir=str(tmp_path), download=False, seed=seed, val_fraction=0.2)
        dm.setup("fit")
        described.append(dm.describe())
    assert described[0].source_kind == "http" and described[0].source.startswith("https://")
    assert set(described[0].identity["files_sha256"]) == {p.name for p in MNISTDataModule(
        data_dir=str(tmp_path)).required_files()}
    assert split_digest(described[0], "test") == split_digest(described[1], "test")  # the official test set
    assert split_digest(described[0], "train") != split_digest(described[1], "train")  # another seeded draw


def test_a_run_records_its_splits_as_inputs(run_cli, mlflow_client: MlflowClient) -> None:
    base = ["data=synthetic", "data.num_samples=64", "trainer.max_steps=1", *FAST]
    assert run_cli(*base) == 0 and run_cli(*base, "seed=1") == 0
    runs = {r.data.params["seed"]: r for r in all_runs(mlflow_client)}
    inputs = {seed: inputs_by_context(run) for seed, run in runs.items()}
    assert set(inputs["0"]) == {"train", "val", "test"}
    expected = synthetic(seed=0).describe()  # split sizes depend on the count and the fractions only
    for split, dataset in inputs["0"].items():
        assert dataset.name == "synthetic" and dataset.source_type == "code"
        profile = json.loads(dataset.profile)
        assert profile["num_rows"] == expected.splits[split].size and profile["drawn_by.seed"] == 0
        assert json.loads(dataset.schema)["mlflow_colspec"][0]["tensor-spec"]["shape"] == [-1, 3, 32, 32]
        assert dataset.digest != inputs["1"][split].digest  # seed 1 draws other examples
    train_digest = inputs["0"]["train"].digest
    experiment_ids = [runs["0"].info.experiment_id]
    query = f"dataset.name = 'synthetic' AND dataset.digest = '{train_digest}'"  # the UI's Datasets filter
    found = mlflow_client.search_runs(experiment_ids, query)
    assert [r.info.run_id for r in found] == [runs["0"].info.run_id]
    assert len(mlflow_client.search_runs(experiment_ids, "dataset.context = 'test'")) == 2


def test_logging_the_same_inputs_again_adds_nothing(mlflow_client: MlflowClient) -> None:
    run = mlflow_client.create_run(mlflow_client.create_experiment("resumed"))
    description = synthetic().describe()
    log_dataset_inputs(mlflow_client, run.info.run_id, description)
    log_dataset_inputs(mlflow_client, run.info.run_id, description)  # a resumed run starts fit again
    assert len(mlflow_client.get_run(run.info.run_id).inputs.dataset_inputs) == 3
