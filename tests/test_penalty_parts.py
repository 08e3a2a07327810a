"""Each regularizer's penalty and penalty gradient apart, beside the totals; per-run locations as tags."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from src.training.module import ClassificationModule
from src.training.penalty_gradient import add_penalty_gradient
from src.training.regularizers import L1, L2


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_each_term_and_its_gradient_norm_by_hand() -> None:
    net = small_net()
    l1, l2 = L1(strength=1e-2), L2(strength=1e-3)
    module = ClassificationModule(net, functools.partial(torch.optim.SGD, lr=0.1), regularizers=[l1, l2])
    weights = [net[1].weight, net[3].weight]  # conv/linear weights only, biases left out by default
    terms = module.penalty_terms()
    assert terms["l1"].item() == pytest.approx(1e-2 * sum(w.abs().sum().item() for w in weights), rel=1e-6)
    assert terms["l2"].item() == pytest.approx(1e-3 * sum(w.square().sum().item() for w in weights), rel=1e-6)
    assert module.penalty().item() == pytest.approx(terms["l1"].item() + terms["l2"].item(), rel=1e-6)

    parts: dict[str, torch.Tensor] = {}
    add_penalty_gradient(net, [l1, l2], parts)
    count = sum(int((w != 0).sum()) for w in weights)
    assert parts["l1"].item() == pytest.approx(1e-2 * math.sqrt(count), rel=1e-6)  # ‖λ·sign θ‖
    norm = math.sqrt(sum(w.square().sum().item() for w in weights))
    assert parts["l2"].item() == pytest.approx(2e-3 * norm, rel=1e-6)  # ‖2λθ‖


def test_a_run_logs_each_penalty_beside_the_total_and_its_locations_as_tags(run_cli, mlflow_client) -> None:
    assert run_cli("reg=[l1,l2]", "reg.l1.strength=1e-2", "data=synthetic", "data.num_samples=64", "sched=none",
                   "trainer.max_steps=4", "trainer.max_epochs=-1", "trainer.log_every_n_steps=2", "test=false",
                   "trainer.enable_progress_bar=false", "monitor=off") == 0
    run = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])[0]

    def history(key: str) -> dict[int, float]:
        return {m.step: m.value for m in mlflow_client.get_metric_history(run.info.run_id, key)}

    total, l1, l2 = history("train/penalty"), history("train/penalty/l1"), history("train/penalty/l2")
    assert sorted(total) == sorted(l1) == sorted(l2) == [1, 3]
    assert all(total[s] == pytest.approx(l1[s] + l2[s], rel=1e-5) for s in total)
    assert l1[1] > l2[1] > 0  # λ1 = 1e-2 on Σ|θ| against λ2 = 1e-4 on Σθ²
    assert sorted(history("grad_penalty/l1/global_norm")) == sorted(history("grad_penalty/l2/global_norm")) == [1, 3]

    params, tags = run.data.params, run.data.tags
    assert not [k for k in params if k.startswith("paths.") or k.endswith(".dirpath") or k.endswith("default_root_dir")]
    assert tags["location.paths.output_dir"] and tags["location.callbacks.model_checkpoint.dirpath"].endswith(
        "checkpoints")
    assert params["reg.l1.strength"] == "0.01" and params["reg_strength"] == "0.0001"


def test_the_average_losses_are_the_means_since_the_last_logged_step(run_cli, mlflow_client) -> None:
    """`train/loss_avg` and `train/objective_avg` over the batches between logged steps: with a log every step they are
    that step's data loss and data loss + penalty; with a vanishing lr the penalty is constant, so over a window of two
    batches the objective's mean is the data loss's mean plus that penalty."""
    for every, lr in ((1, 0.05), (2, 1e-12)):  # lr must be positive: 1e-12 leaves the weights as they are
        assert run_cli("reg=l1", "reg.l1.strength=1e-2", "data=synthetic", "data.num_samples=64", "sched=none",
                       f"optim.lr={lr}", "trainer.max_steps=4", "trainer.max_epochs=-1",
                       f"trainer.log_every_n_steps={every}", "test=false", "trainer.enable_progress_bar=false",
                       "monitor=off") == 0
    runs = sorted(mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()]),
                  key=lambda r: r.info.start_time)

    def history(run, key: str) -> dict[int, float]:  # noqa: ANN001
        return {m.step: m.value for m in mlflow_client.get_metric_history(run.info.run_id, key)}

    loss, penalty = history(runs[0], "train/loss"), history(runs[0], "train/penalty")
    loss_avg, objective_avg = history(runs[0], "train/loss_avg"), history(runs[0], "train/objective_avg")
    assert sorted(loss_avg) == sorted(loss) == [0, 1, 2, 3]
    assert all(loss_avg[s] == pytest.approx(loss[s], rel=1e-6) for s in loss)
    assert all(objective_avg[s] == pytest.approx(loss[s] + penalty[s], rel=1e-6) for s in loss)
    penalty = history(runs[1], "train/penalty")
    loss_avg, objective_avg = history(runs[1], "train/loss_avg"), history(runs[1], "train/objective_avg")
    assert sorted(objective_avg) == [1, 3] and max(penalty.values()) == pytest.approx(min(penalty.values()), rel=1e-6)
    assert all(objective_avg[s] == pytest.approx(loss_avg[s] + penalty[s], rel=1e-5) for s in objective_avg)
