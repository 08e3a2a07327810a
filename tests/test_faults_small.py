"""The small faults, through the real commands where a user meets them (the store asserted afterwards): bad
`GRADREG_*` values, `python -m src.reap` and GRADREG_LOST_AFTER_S, Hydra's composition errors, a GPU trainer on a
machine without one, and the `outcome` of a closed sweep parent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import torch

from src.paths import PROJECT_ROOT
from src.settings import ConfigError
from src.settings.environment import check_environment
from src.tracking.sweep_tally import record_tally
from tests.mlflow_reads import all_runs


def command(store: str, module: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MLFLOW_TRACKING_URI": store, **env}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=environ, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("GRADREG_HEARTBEAT_S", "soon", "a number of seconds > 0"),
    ("GRADREG_LOST_AFTER_S", "-5", "a number of seconds > 0"),
    ("GRADREG_LOST_AFTER_S", "inf", "a number of seconds > 0"),
    ("GRADREG_REAP", "maybe", "1 or 0"),
    ("GRADREG_TRACKING_TIMEOUT", "0", "a number of seconds > 0"),
    ("GRADREG_TRACKING_TIMEOUT", "nan", "a number of seconds > 0"),
])
def test_every_operating_setting_is_checked_naming_its_value(name: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_environment({name: value})
    assert f"{name}={value!r} is not allowed" in str(err.value) and allowed in str(err.value)


def test_good_operating_settings_pass() -> None:
    check_environment({})
    check_environment({"GRADREG_HEARTBEAT_S": "5", "GRADREG_LOST_AFTER_S": "30", "GRADREG_REAP": "no",
                       "GRADREG_TRACKING_TIMEOUT": "2.5"})


def test_a_bad_operating_setting_stops_the_command_before_any_run(mlflow_store, mlflow_client) -> None:  # noqa: ANN001
    proc = command(mlflow_store, "src.train", GRADREG_REAP="maybe", GRADREG_TRACKING_TIMEOUT="x")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == "invalid environment:"
    assert "GRADREG_REAP='maybe'" in proc.stderr and "GRADREG_TRACKING_TIMEOUT='x'" in proc.stderr
    assert all_runs(mlflow_client) == []
    proc = command(mlflow_store, "src.reap", "--dry-run", GRADREG_LOST_AFTER_S="never")
    assert proc.returncode == 2 and proc.stderr.startswith("GRADREG_LOST_AFTER_S='never' is not allowed")


def test_reap_closes_a_silent_run_of_another_host_after_GRADREG_LOST_AFTER_S(mlflow_store, mlflow_client) -> None:  # noqa: ANN001, N802
    beat = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tags = {"host": "another-node", "pid": "4242", "pid_start": "", "heartbeat": beat}
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("gradreg"), tags=tags).info.run_id
    by_default = command(mlflow_store, "src.reap")
    assert by_default.returncode == 0 and "closed 0 lost run(s)" in by_default.stdout, "5 min < the default 15"
    assert mlflow_client.get_run(run_id).info.status == "RUNNING"
    proc = command(mlflow_store, "src.reap", GRADREG_HEARTBEAT_S="30", GRADREG_LOST_AFTER_S="120")
    assert proc.returncode == 0 and "closed 1 lost run(s)" in proc.stdout, proc.stdout + proc.stderr
    run = mlflow_client.get_run(run_id)
    assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", "lost")


@pytest.mark.parametrize(("override", "says", "options"), [
    ("model=foo", "model=foo is not an option of the 'model' group", ["lenet5", "mlp", "resnet152", "vgg19"]),
    ("trainer.max_step=5", "trainer.max_step is not a setting of Trainer (did you mean 'max_steps'?)", ["max_epochs"]),
])
def test_a_composition_error_names_the_options_and_exits_2(mlflow_store, mlflow_client, override: str,  # noqa: ANN001
                                                           says: str, options: list[str]) -> None:
    proc = command(mlflow_store, "src.train", override)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and all(option in proc.stderr for option in options), proc.stderr
    assert "+trainer" not in proc.stderr and "To append" not in proc.stderr, "no advice to append a misspelled key"
    assert all_runs(mlflow_client) == []


def test_a_composition_error_in_a_swept_value_stops_the_sweep_before_its_parent(mlflow_store, mlflow_client) -> None:  # noqa: ANN001
    proc = command(mlflow_store, "src.train", "-m", "model=mlp,foo")
    assert proc.returncode == 2 and "model=foo is not an option of the 'model' group" in proc.stderr, proc.stderr
    assert all_runs(mlflow_client) == [], "no sweep parent, no job run"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_a_gpu_trainer_on_a_machine_without_one_is_refused_before_any_run(mlflow_store, mlflow_client) -> None:  # noqa: ANN001
    proc = command(mlflow_store, "src.train", "trainer=gpu")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "trainer.accelerator='gpu' needs a CUDA GPU and this machine has none" in proc.stderr
    assert all_runs(mlflow_client) == []


@pytest.mark.parametrize(("outcomes", "status", "outcome"), [
    ({"completed": 2}, "FINISHED", "completed"),
    ({"completed": 1, "interrupted": 1}, "KILLED", "interrupted"),
    ({"completed": 1, "failed": 1}, "FAILED", "failed"),
])
def test_a_closed_sweep_parent_carries_an_outcome(mlflow_client, outcomes: dict, status: str, outcome: str) -> None:  # noqa: ANN001
    parent = mlflow_client.create_run(mlflow_client.create_experiment("gradreg")).info.run_id
    assert record_tally(mlflow_client, parent, 2, 2, Counter(outcomes)) == status
    run = mlflow_client.get_run(parent)
    assert (run.info.status, run.data.tags["outcome"]) == (status, outcome)
