"""The second edition's long-horizon and L2 x batch-norm readers: the post's criteria, steps reached, the effective
learning rate and the loss spikes, read from runs logged by hand into a real store."""

from __future__ import annotations

import math

import pytest
from mlflow.entities import Metric, Param, RunTag

from src.report import bn_l2, long_horizon


def log_run(client, experiment: str, overrides: str, params: dict[str, str], series: dict[str, list[float]],
            tags: dict[str, str] | None = None, every: int = 10) -> str:
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id)
    metrics = [Metric(key, value, 0, i * every + every - 1) for key, values in series.items()
               for i, value in enumerate(values)]
    client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                     tags=[RunTag("overrides", overrides), *(RunTag(k, v) for k, v in (tags or {}).items())])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_long_runs_report_the_posts_criteria_and_the_steps_reached(mlflow_client) -> None:
    flat = [2.3, 0.5, 0.2, 0.1]
    log_run(mlflow_client, "study2", "experiment=study2_long_l1_adam +study/arm=l1_1e-3 seed=0",
            {"trainer.max_steps": "370000", "seed": "0"},
            {"train/loss": flat, "train/loss_avg": flat, "train/objective_avg": [3.0, 150.0, 0.4, 0.3],
             "reg/weight_norm": [10.0, 8.0, 6.0, 5.0], "reg/small_fraction": [0.1, 0.9], "health/frac_healthy": [1.0]},
            {"health.verdict": "healthy", "health.final_state": "healthy"}, every=250)
    log_run(mlflow_client, "study2", "experiment=study2_long_l2_sgd +study/arm=none seed=1",
            {"trainer.max_steps": "180000", "seed": "1"}, {"train/loss": flat[:2], "train/objective_avg": flat[:2]},
            every=250)
    log_run(mlflow_client, "study2", "experiment=study2_late_dying +study/arm=none seed=0", {}, {"train/loss": flat})
    runs = long_horizon.long_runs(mlflow_client, "study2")
    assert [(r.block, r.arm, r.seed) for r in runs] == [("long_l1_adam", "l1_1e-3", "0"), ("long_l2_sgd", "none", "1")]
    l1, none = runs
    assert l1.steps == 1000 and l1.horizon == 370_000 and none.steps == 500  # a run cut short says how far it got
    assert l1.max_objective_avg == 150.0 and l1.meets("vanished") and not l1.meets("exploded")
    assert not none.meets("vanished") and l1.weight_norm == (10.0, 5.0) and l1.small_fraction == 0.9
    assert long_horizon.as_dict(l1)["meets_vanished"] is True and "history" not in long_horizon.as_dict(l1)


def test_a_spike_is_a_jump_over_the_windows_before_not_noise_near_zero() -> None:
    steady = [(i * 10, 0.02 + 0.01 * (i % 3)) for i in range(30)]  # median 0.03 nats
    assert bn_l2.spikes(steady) == []
    spiked = steady[:20] + [(200, 2.0)] + steady[21:]
    assert bn_l2.spikes(spiked) == [200]
    tiny = steady[:20] + [(200, 0.1)] + steady[21:]  # 3x the median but under 0.1 nats above it
    assert bn_l2.spikes(tiny) == []


def test_bn_l2_reads_the_median_conv_norm_and_the_effective_learning_rate(mlflow_client) -> None:
    convs = {f"weight_norm/{i:02d}.features.{3 * i}": [2.0, 1.0] for i in range(3)}
    head = {"weight_norm/03.classifier.0": [50.0, 50.0]}  # not scale-invariant: left out
    for arm, strength in (("none", None), ("l2_5e-3", "0.005")):
        params = {"optim.lr": "0.05", "optim.momentum": "0.9", "seed": "0"}
        params |= {"reg.l2.strength": strength} if strength else {}
        log_run(mlflow_client, "study2", f"experiment=study2_bn_l2_vgg19 +study/arm={arm} seed=0", params,
                {**convs, **head, "train/loss_avg": [2.0, 1.0], "sharpness/lambda_max": [30.0]})
    runs = bn_l2.bn_l2_runs(mlflow_client, "study2")
    assert [r.arm for r in runs] == ["none", "l2_5e-3"]
    l2 = runs[1]
    assert l2.conv_norm == [(9, 2.0), (19, 1.0)]
    assert l2.effective_lr == [(9, pytest.approx(0.05 / 4)), (19, pytest.approx(0.05))]
    summary = l2.summary()
    assert summary["equilibrium_steps"] == pytest.approx(0.1 / (2 * 0.05 * 0.005))
    assert summary["cumulative_decay"] == pytest.approx(2 * 0.05 * 0.005 * 20 / 0.1)
    assert summary["two_over_lr"] == pytest.approx(40.0) and summary["sharpness_max"] == 30.0
    assert runs[0].summary()["equilibrium_steps"] is None and math.isclose(runs[0].summary()["cumulative_decay"], 0)
