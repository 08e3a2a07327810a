"""Sweep plumbing without training: lock retries, the parent run's verdict, what launchers pickle,
and the configs (SLURM launcher, the sweep callback, the seed_grid study)."""

from __future__ import annotations

import itertools
import pickle
from collections import Counter

import pytest
from mlflow.exceptions import MlflowException

from src.paths import CONFIG_DIR
from src.tracking.client import LockRetryingClient, retry_on_locked
from src.tracking.sweeps import MlflowSweepCallback, planned_jobs, summarize


class Flaky:
    """Fails `failures` times with `message`, then returns its call count."""

    def __init__(self, failures: int, message: str) -> None:
        self.failures, self.message, self.calls = failures, message, 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise MlflowException(self.message)
        return self.calls


def test_locked_store_is_retried_until_it_answers() -> None:
    call = Flaky(2, "(sqlite3.OperationalError) database is locked")
    assert retry_on_locked(call, base_delay_s=0.001) == 3


def test_other_errors_and_endless_locks_are_raised() -> None:
    other = Flaky(1, "RESOURCE_DOES_NOT_EXIST: run not found")
    with pytest.raises(MlflowException, match="not found"):
        retry_on_locked(other, base_delay_s=0.001)
    assert other.calls == 1
    locked = Flaky(99, "database is locked")
    with pytest.raises(MlflowException, match="locked"):
        retry_on_locked(locked, attempts=3, base_delay_s=0.001)
    assert locked.calls == 3


def test_a_data_set_insert_that_lost_a_race_is_retried_and_other_unique_violations_are_not() -> None:
    raced = Flaky(1, "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, "
                     "datasets.digest")
    assert retry_on_locked(raced, base_delay_s=0.001) == 2  # the repeat finds the winner's row
    param = Flaky(1, "(sqlite3.IntegrityError) UNIQUE constraint failed: params.key, params.run_uuid")
    with pytest.raises(MlflowException, match="params"):  # a claim's refusal (src/tracking/claim.py) stays one
        retry_on_locked(param, base_delay_s=0.001)
    assert param.calls == 1


def test_retrying_client_wraps_methods_and_survives_pickling(mlflow_store: str) -> None:
    from mlflow.tracking import MlflowClient

    wrapped = LockRetryingClient(MlflowClient(tracking_uri=mlflow_store))
    assert wrapped.tracking_uri == mlflow_store
    assert [e.name for e in wrapped.search_experiments()] == ["Default"]
    clone = pickle.loads(pickle.dumps(wrapped))  # joblib ships objects to its workers this way
    assert clone.tracking_uri == mlflow_store


def test_callback_ships_its_settings_not_its_open_parent_run() -> None:
    callback = MlflowSweepCallback(enabled=True)
    callback._open = {"client": object(), "parent_run_id": "abc"}
    clone = pickle.loads(pickle.dumps(callback))
    assert clone.enabled is True and clone._open is None


@pytest.mark.parametrize(
    ("outcomes", "jobs", "status"),
    [
        ({"completed": 4}, 4, "FINISHED"),
        ({"completed": 3, "diverged": 1}, 4, "FINISHED"),  # divergence is a finding, not a crash
        ({"diverged": 2}, 2, "FINISHED"),
        ({"completed": 3, "no_run": 1}, 4, "FAILED"),  # a job that never created its run
        ({"completed": 2, "not_started": 2}, 4, "FAILED"),  # the launcher stopped before two jobs
        ({"completed": 3, "failed": 1}, 4, "FAILED"),
        ({"completed": 1, "interrupted": 1}, 2, "KILLED"),
        ({"completed": 4, "lost": 1}, 5, "KILLED"),  # a job's process vanished (SIGKILL, OOM)
        ({"completed": 3, "running": 1}, 4, "FAILED"),
        ({}, 0, "FAILED"),
    ],
)
def test_parent_status_says_whether_every_job_ended(outcomes: dict, jobs: int, status: str) -> None:
    text, verdict = summarize(Counter(outcomes), jobs)
    assert verdict == status
    assert text == (" ".join(f"{k}={v}" for k, v in sorted(outcomes.items())) or "none")


@pytest.mark.parametrize(("overrides", "jobs"), [
    (["optim=sgd,adam", "seed=0,1"], 4),
    (["optim=sgd,adam", "seed=0,1,2", "model=mlp"], 6),
    (["seed=0,1", "seed=3"], 1),  # the last value of a key wins, as in Hydra's basic sweeper
    ([], 1),
])
def test_planned_jobs_follow_the_basic_sweeper(compose, overrides: list[str], jobs: int) -> None:
    cfg = compose(hydra_node=True)
    cfg.hydra.overrides.task = overrides
    assert planned_jobs(cfg) == jobs


def test_planned_jobs_of_the_optuna_search_are_its_trials(compose) -> None:
    assert planned_jobs(compose("experiment=l2_search", hydra_node=True)) == 10
    assert planned_jobs(compose("experiment=l2_search", "hydra.sweeper.n_trials=3", hydra_node=True)) == 3


def test_slurm_launcher_and_sweep_callback_compose(compose) -> None:
    cfg = compose("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_task=1",
                  hydra_node=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_task, launcher.cpus_per_task) == ("gpu", 1, 8)
    assert launcher.timeout_min == 240 and launcher.array_parallelism == 64
    assert cfg.hydra.callbacks.mlflow_sweep._target_ == "src.tracking.sweeps.MlflowSweepCallback"


@pytest.mark.skipif(not (CONFIG_DIR / "reg").is_dir(), reason="needs issue 3's reg group (conf/reg/)")
def test_seed_grid_composes_every_job(compose) -> None:
    """The study's 45 jobs, composed as the basic sweeper will: model x arm x seed."""
    params = compose("experiment=seed_grid", hydra_node=True).hydra.sweeper.params
    axes = {key: str(values).split(",") for key, values in params.items()}
    assert axes["+study/model"] == ["resnet152", "vgg19", "lenet5"] and axes["seed"] == ["0", "1", "2"]
    arms = {"none": ([], "SGD"), "l1_adam": (["l1"], "Adam"), "l2_sgd": (["l2"], "SGD"),
            "elasticnet_sgd": (["elasticnet"], "SGD"), "dropout_sgd": (["dropout"], "SGD")}
    assert sorted(axes["+study/arm"]) == sorted(arms)
    widths = {"resnet152": 0.0625, "vgg19": 0.125, "lenet5": None}
    jobs = list(itertools.product(*([f"{k}={v}" for v in vs] for k, vs in axes.items())))
    assert len(jobs) == 45
    for job in (j for j in jobs if j[2] == "seed=0"):  # the seed changes no composition: 15 distinct configs
        cfg = compose("experiment=seed_grid", *job)
        model, arm = job[0].split("=")[1], job[1].split("=")[1]
        assert cfg.model._target_ == f"src.models.{model}" and cfg.model.get("width") == widths[model]
        assert list(cfg.reg.keys()) == arms[arm][0] and cfg.optim._target_ == f"torch.optim.{arms[arm][1]}"
        assert cfg.data._target_.endswith("MNIST5kDataModule") and cfg.logger.experiment_name == "seed_grid"
