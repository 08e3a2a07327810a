"""Shared fixtures: a fresh MLflow sqlite store per test, and the real entry point in-process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import src  # noqa: F401 - registers the config resolvers
from src.paths import CONFIG_DIR, PROJECT_ROOT
from src.tracking.store import copy_store

FAST = [  # shrink any run to seconds
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(autouse=True)
def _no_third_party_noise() -> None:
    """The CLI's filters for known third-party warnings (by module and message), inside each test's own."""
    from src.lifecycle.console import silence_noise_warnings

    silence_noise_warnings()


@pytest.fixture(scope="session")
def _template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialized, empty MLflow sqlite database, made once (schema migration takes seconds)."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("template-store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def mlflow_store(tmp_path: Path, _template_store: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """MLFLOW_TRACKING_URI pointed at a fresh sqlite store in this test's tmp dir."""
    store = tmp_path / "mlruns"
    store.mkdir()
    copy_store(_template_store, store / "mlflow.db")  # sqlite backup: complete whatever the journal
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def mlflow_client(mlflow_store: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=mlflow_store)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The project's data folder: shares the mnist5k cache between tests and runs."""
    path = PROJECT_ROOT / "data"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def compose(tmp_path: Path, data_dir: Path) -> Callable[..., object]:
    """Compose the real config (with Hydra's own node) from overrides, paths in tmp."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    def _compose(*overrides: str, hydra_node: bool = False):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            return hydra_compose(
                config_name="train",
                overrides=[f"paths.log_dir={tmp_path / 'outputs'}", f"paths.data_dir={data_dir}", *overrides],
                return_hydra_config=hydra_node,
            )

    return _compose


@pytest.fixture
def run_cli(tmp_path: Path, data_dir: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch):
    """Run `python -m src.train <overrides>` in this process; return its exit code (0 = success)."""
    from src.train import main

    def _run(*overrides: str) -> int:
        argv = ["src.train", f"paths.log_dir={tmp_path / 'outputs'}", f"paths.data_dir={data_dir}", *overrides]
        monkeypatch.setattr(sys, "argv", argv)
        try:
            main()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return _run
