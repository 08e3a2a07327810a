"""The `reg` config group end to end: composition, sweeps over lists, what each run logs, the
sparsity of proximal vs subgradient L1 on LeNet-5/mnist5k, and bad values refused before any run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from src.paths import PROJECT_ROOT
from tests.conftest import FAST
from tests.mlflow_reads import all_runs

TINY = ["data=synthetic", "data.num_samples=64", "trainer.max_steps=2", *FAST]


def test_reg_group_composes_any_combination(compose) -> None:
    from src.tracking.naming import reg_label
    from src.training.builders import build_regularizers
    from src.training.regularizers import L1, L2, Dropout, ElasticNet

    assert build_regularizers(compose()) == [] and reg_label(compose()) == "none"
    assert build_regularizers(compose("reg=[]")) == []
    l2, dropout = build_regularizers(cfg := compose("reg=[l2,dropout]", "reg.l2.mode=decoupled", "reg.dropout.p=0.2"))
    assert isinstance(l2, L2) and l2.mode == "decoupled" and l2.weight_decay == pytest.approx(2 * l2.strength)
    assert isinstance(dropout, Dropout) and dropout.p == 0.2 and reg_label(cfg) == "l2+dropout"
    (l1,) = build_regularizers(compose("reg=l1", "reg.l1.strength=1e-3", "reg.l1.proximal=true"))
    assert isinstance(l1, L1) and l1.strength == 1e-3 and l1.proximal
    cfg = compose("reg=elasticnet", "reg.elasticnet.l1_ratio=1", "reg.elasticnet.include_bias=true")
    (net,) = build_regularizers(cfg)
    assert isinstance(net, ElasticNet) and net.l1_ratio == 1.0 and net.include_bias and not net.include_norm


def test_multirun_over_lists_runs_each_combination(run_cli, mlflow_client) -> None:
    assert run_cli("hydra.mode=MULTIRUN", "reg=[],[l1],[l2,dropout]", *TINY) == 0  # = python -m src.train -m ...
    jobs = [r for r in all_runs(mlflow_client) if r.data.tags.get("sweep_role") != "parent"]
    runs = {r.data.tags["reg"]: r for r in jobs}
    assert len(jobs) == 3 and set(runs) == {"none", "l1", "l2+dropout"}
    assert all(r.data.tags["outcome"] == "completed" for r in runs.values())
    metrics = {tag: set(r.data.metrics) for tag, r in runs.items()}
    assert "train/penalty" not in metrics["none"] and {"train/loss", "reg/weight_norm"} <= metrics["none"]
    assert {"train/loss", "train/penalty", "reg/weight_norm", "reg/sparsity"} <= metrics["l1"]
    assert {"train/penalty", "reg/weight_norm"} <= metrics["l2+dropout"] and "reg/sparsity" not in metrics["l2+dropout"]
    assert runs["l2+dropout"].data.params["reg.dropout.p"] == "0.5"
    assert runs["none"].data.params["reg"] == "{}"


def final(mlflow_client, run, key: str) -> tuple[int, float]:  # noqa: ANN001
    history = mlflow_client.get_metric_history(run.info.run_id, key)
    return len(history), max(history, key=lambda m: m.step).value


def test_proximal_l1_sparsifies_lenet5_on_mnist5k_and_subgradient_does_not(run_cli, mlflow_client) -> None:
    budget = ["trainer.max_steps=40", "trainer.max_epochs=-1", "trainer.log_every_n_steps=20", "test=false",
              "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "sched=none"]
    for proximal in ("true", "false"):
        assert run_cli("model=lenet5", "data=mnist5k", "reg=l1", "reg.l1.strength=5e-3",
                       f"reg.l1.proximal={proximal}", f"logger.run_name=prox-{proximal}", *budget) == 0
    runs = {r.info.run_name: r for r in all_runs(mlflow_client)}
    n_prox, proximal_sparsity = final(mlflow_client, runs["prox-true"], "reg/sparsity")
    n_sub, subgradient_sparsity = final(mlflow_client, runs["prox-false"], "reg/sparsity")
    assert n_prox == n_sub == 2  # steps 20 and 40: log_every_n_steps is respected
    print(f"LeNet-5/mnist5k, 40 steps: proximal {proximal_sparsity:.4f}, subgradient {subgradient_sparsity:.4f}")
    assert proximal_sparsity > 0.01  # hundreds of exact zeros among LeNet-5's 61k weights (3.4% measured)
    assert subgradient_sparsity < 1e-4  # weights oscillate around 0, (almost) never exactly on it


BAD = [
    (["reg=l1", "reg.l1.strength=-0.1"], "reg.l1.strength=-0.1 is not allowed; it must be a number >= 0"),
    (["reg=l2", "reg.l2.strength=-1"], "reg.l2.strength=-1 is not allowed; it must be a number >= 0"),
    (["reg=elasticnet", "reg.elasticnet.strength=-1e-3"], "reg.elasticnet.strength=-0.001 is not allowed"),
    (["reg=elasticnet", "reg.elasticnet.l1_ratio=1.5"], "reg.elasticnet.l1_ratio=1.5 is not allowed; it must be a number in [0, 1]"),  # noqa: E501
    (["reg=elasticnet", "reg.elasticnet.l1_ratio=-0.5"], "reg.elasticnet.l1_ratio=-0.5 is not allowed"),
    (["reg=dropout", "reg.dropout.p=1.0"], "reg.dropout.p=1.0 is not allowed; it must be a number in [0, 1)"),
    (["reg=dropout", "reg.dropout.p=-0.2"], "reg.dropout.p=-0.2 is not allowed; it must be a number in [0, 1)"),
    (["reg=dropout", "reg.dropout.placement=inside"], "reg.dropout.placement='inside' is not allowed; it must be one of ['head', 'trunk', 'both']"),  # noqa: E501
    (["reg=l2", "reg.l2.mode=coupled"], "reg.l2.mode='coupled' is not allowed; it must be one of ['penalty', 'decoupled']"),  # noqa: E501
    (["reg=l1", "reg.l1.proximal=maybe"], "reg.l1.proximal='maybe' is not allowed; it must be true or false"),
    (["reg=l1", "reg.l1.strength=abc"], "reg.l1.strength='abc' is not allowed; it must be a number >= 0"),
    (["reg=l1", "+reg.l1.lambda=1"], "reg.l1.lambda is not a setting of L1"),
    (["reg=[l2,dropout]", "optim.weight_decay=0.01"], "optim.weight_decay=0.01 is not allowed together with reg.l2"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[b[0][-1] for b in BAD])
def test_bad_reg_value_fails_early_with_its_message_and_leaves_no_run(
    run_cli, mlflow_client, capsys, overrides: list[str], message: str
) -> None:
    assert run_cli(*overrides, *TINY) != 0
    assert message in capsys.readouterr().err
    assert all_runs(mlflow_client) == []


@pytest.mark.slow  # the real CLI in a subprocess: 18 s loaded (test_validation keeps one fast)
def test_real_cli_refuses_bad_value_before_any_run(tmp_path, mlflow_store: str, mlflow_client) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    proc = subprocess.run(
        [sys.executable, "-m", "src.train", "reg=[l2,dropout]", "reg.dropout.p=1", f"paths.log_dir={tmp_path}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "reg.dropout.p=1 is not allowed; it must be a number in [0, 1)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert all_runs(mlflow_client) == []
