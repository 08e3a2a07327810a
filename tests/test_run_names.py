"""Run names: short forms of overrides, the keys that vary in a sweep, names unique within a sweep
(a real multirun whose jobs differ only in `model.batch_norm` and `model.init`), read through MlflowClient."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from src.tracking.naming import deduplicate_in_sweep, parse_overrides, run_name
from src.tracking.short_forms import part, short_number, short_value
from src.tracking.sweep_axes import varying_keys
from tests.sweeps import run_sweep, sweep_runs, tail

BN_INIT_SWEEP = ["model=vgg19", "model.width=0.0625", "model.batch_norm=true,false", "model.init=torchvision,kaiming"]


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.05, "0.05"), (1e-4, "1e-4"), (2.5e-5, "2.5e-5"), (1e5, "1e5"), (0.0123456789, "0.01235"), (1500.0, "1500"),
     (1.0, "1"), (0.1 + 0.2, "0.3"), (-0.05, "-0.05"), (1.235e-7, "1.235e-7"), (0.0, "0")],
)
def test_numbers_take_their_shortest_form_at_four_digits(value: float, text: str) -> None:
    assert short_number(value) == text


def test_parts_abbreviate_known_keys_and_fall_back_to_the_last_segment() -> None:
    assert part("model.batch_norm", "True") == "bn1" and part("model.batch_norm", "false") == "bn0"
    assert part("optim.lr", "0.0500") == "lr0.05"
    assert part("model.init", "kaiming") == "init=kaiming"
    assert part("data", "digits") == "digits"
    assert part("reg.l2.strength", "1e-4") == "lam1e-4"
    assert part("reg.l2.strength", "1e-4", regs=["l2", "dropout"]) == "l2lam1e-4"
    assert part("callbacks.poison.step", "3") == "step3"  # generic: the last key segment
    assert part("study/arm", "l1_adam") == "arm=l1_adam"
    assert short_value("tests.gradient_probes.PoisonGradient") == ("PoisonGradient", True)
    assert short_value("[l2,dropout]") == ("l2,dropout", True)


def test_varying_keys_come_from_the_command_line_and_the_sweeper_params() -> None:
    lines = ["+study/model=resnet152,vgg19", "seed=0,1,2", "optim.lr=tag(log,interval(0.001,0.5))",
             "model=vgg19", "model.batch_norm=true,false", "x=choice(1)", "seed=1"]
    assert varying_keys(lines) == ["study/model", "optim.lr", "model.batch_norm"]  # seed pinned, x single


def test_overrides_are_read_as_typed_and_odd_ones_do_not_break_a_name() -> None:
    lines = ["+study/arm=l1_adam", "~model.pool", "optim.lr=0.0500", "api_key=***", "broken=[a", "seed=0,1"]
    assert parse_overrides(lines) == [("study/arm", "l1_adam"), ("optim.lr", "0.0500"), ("api_key", "***"),
                                      ("broken", "[a")]  # a deletion and a sweep name nothing


def test_single_run_names_its_non_default_overrides(compose) -> None:
    overrides = ["model=vgg19", "model.batch_norm=true", "optim.lr=0.05", "reg=l2", "trainer.enable_progress_bar=false",
                 "paths.log_dir=/tmp/x", "seed=3"]
    cfg = compose(*overrides)
    assert run_name(cfg, {"model": "vgg19", "optim": "sgd"}, overrides) == "vgg19-l2-sgd-bn1-lr0.05-s3"


def test_a_name_given_on_the_command_line_is_kept_and_a_config_name_is_a_head(compose) -> None:
    cfg = compose("logger.run_name=mine", "optim.lr=0.1")
    assert run_name(cfg, {"model": "lenet5", "optim": "sgd"}, ["logger.run_name=mine", "optim.lr=0.1"]) == "mine"
    cfg = compose("experiment=vanishing_demo", "seed=3")
    assert run_name(cfg, {"model": "mlp", "optim": "sgd"}, ["experiment=vanishing_demo", "seed=3"]) == (
        "vanishing_demo-s3")


def test_bn_init_jobs_get_distinct_names(compose) -> None:
    """The names the real sweep below must get, composed as its four jobs are."""
    varying = varying_keys(BN_INIT_SWEEP)
    assert varying == ["model.batch_norm", "model.init"]
    names = []
    for num, (bn, init) in enumerate(itertools.product(["True", "False"], ["torchvision", "kaiming"])):
        job = ["model=vgg19", "model.width=0.0625", f"model.batch_norm={bn}", f"model.init={init}"]
        names.append(run_name(compose(*job), {"model": "vgg19", "optim": "sgd"}, job,
                              {"job_num": num, "varying_keys": varying}))
    assert names == ["vgg19-none-sgd-bn1-init=torchvision-s0", "vgg19-none-sgd-bn1-init=kaiming-s0",
                     "vgg19-none-sgd-bn0-init=torchvision-s0", "vgg19-none-sgd-bn0-init=kaiming-s0"]


def test_a_collision_within_a_sweep_gets_the_job_number(mlflow_client: MlflowClient) -> None:
    experiment = mlflow_client.create_experiment("names")
    runs = [mlflow_client.create_run(experiment, run_name="lenet5-l2-sgd-s0", tags={"sweep_id": "sw"})
            for _ in range(2)]
    other = mlflow_client.create_run(experiment, run_name="lenet5-l2-sgd-s0", tags={"sweep_id": "another"})
    assert deduplicate_in_sweep(mlflow_client, runs[1], {"job_num": 1, "sweep_id": "sw"}) == "lenet5-l2-sgd-s0-j1"
    assert mlflow_client.get_run(runs[1].info.run_id).info.run_name == "lenet5-l2-sgd-s0-j1"
    assert deduplicate_in_sweep(mlflow_client, runs[0], {"job_num": 0, "sweep_id": "sw"}) == "lenet5-l2-sgd-s0"
    assert deduplicate_in_sweep(mlflow_client, other, {"job_num": 0, "sweep_id": "another"}) == "lenet5-l2-sgd-s0"
    assert deduplicate_in_sweep(mlflow_client, other, {}) == "lenet5-l2-sgd-s0"  # a single run is never renamed


@pytest.mark.slow  # a multirun through the CLI
def test_sweep_over_batch_norm_and_init_names_every_job_apart(tmp_path: Path, mlflow_store: str) -> None:
    proc = run_sweep(tmp_path, mlflow_store, *BN_INIT_SWEEP)
    assert proc.returncode == 0, tail(proc)
    parent, children = sweep_runs(MlflowClient(tracking_uri=mlflow_store))
    names = {r.info.run_name for r in children}
    assert names == {f"vgg19-none-sgd-bn{bn}-init={init}-s0" for bn in (0, 1) for init in ("torchvision", "kaiming")}
    for run in children:  # the full override string stays a tag
        bn = run.data.params["model.batch_norm"] == "True"
        assert f"model.batch_norm={bn}" in run.data.tags["overrides"].split()
        assert run.info.run_name.startswith(f"vgg19-none-sgd-bn{int(bn)}-init={run.data.params['model.init']}")
