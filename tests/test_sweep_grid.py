"""One grid for regularizer x strength: the shared `reg_strength`, names that carry the dose, a cosine
horizon that follows `max_steps`, and a sweep refused whole, before launch, when one job is invalid."""

from __future__ import annotations

import math

import pytest
import torch

from src.tracking.naming import run_name
from src.training.schedules import build_scheduler

TINY = ["data=synthetic", "data.num_samples=64", "sched=none", "trainer.max_steps=2", "trainer.max_epochs=-1",
        "test=false", "trainer.enable_progress_bar=false"]


def test_every_weight_regularizer_reads_the_shared_strength_unless_its_own_is_given(compose) -> None:
    cfg = compose("reg=[l1,l2,elasticnet]", "reg_strength=1e-3")
    assert [cfg.reg[name].strength for name in ("l1", "l2", "elasticnet")] == [1e-3, 1e-3, 1e-3]
    cfg = compose("reg=[l1,l2]", "reg_strength=1e-3", "reg.l2.strength=0.05")
    assert (cfg.reg.l1.strength, cfg.reg.l2.strength) == (1e-3, 0.05)
    assert compose("reg=l2").reg.l2.strength == compose().reg_strength == 1e-4  # the documented default


def test_grid_job_names_carry_the_dose(compose) -> None:
    sweep = {"job_num": 4, "varying_keys": ["reg", "reg_strength", "seed"], "sweep_id": "x"}
    names = set()
    for reg in ("l1", "l2"):
        for strength in ("1e-05", "0.001"):
            overrides = [f"reg={reg}", f"reg_strength={strength}", "seed=1"]
            names.add(run_name(compose(*overrides), {"model": "lenet5", "optim": "sgd"}, overrides, sweep))
    assert names == {"lenet5-l1-sgd-lam1e-5-s1", "lenet5-l1-sgd-lam1e-3-s1", "lenet5-l2-sgd-lam1e-5-s1",
                     "lenet5-l2-sgd-lam1e-3-s1"}


def test_study_arm_names_carry_the_dose_the_arm_sets(compose) -> None:
    sweep = {"job_num": 0, "varying_keys": ["study/arm", "seed"], "sweep_id": "x"}
    names = [run_name(compose(f"+study/arm={arm}"), {"model": "lenet5", "optim": "sgd"}, [f"+study/arm={arm}"], sweep)
             for arm in ("l2_1e-3", "l2_1e-4", "dropout_p03")]
    assert names == ["lenet5-l2-sgd-lam1e-3-s0", "lenet5-l2-sgd-lam1e-4-s0", "lenet5-dropout-sgd-p0.3-s0"]


def cosine_lrs(factory, steps: int, lr: float = 0.1) -> list[float]:  # noqa: ANN001
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = factory(optimizer=optimizer)
    lrs = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_cosine_horizon_follows_max_steps_and_otherwise_the_epochs(compose) -> None:
    from src.config.validation import validate

    short = compose("trainer.max_steps=80", "trainer.max_epochs=-1")
    validate(short)  # no "sched.T_max=-1" from a key the user never set
    factory = build_scheduler(short)
    assert factory.interval == "step"
    lrs = cosine_lrs(factory, 80)
    halfway = 0.1 * (1 + math.cos(math.pi * 40 / 80)) / 2  # the cosine's own formula at step 40
    assert lrs[39] == pytest.approx(halfway) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    long = build_scheduler(compose("trainer.max_epochs=3"))
    assert long.interval == "epoch" and cosine_lrs(long, 3)[-1] == pytest.approx(0.0, abs=1e-12)
    given = build_scheduler(compose("sched.T_max=6", "trainer.max_steps=80"))
    assert given.interval == "epoch" and cosine_lrs(given, 3)[-1] == pytest.approx(0.05)  # half of T_max=6
    assert build_scheduler(compose("sched=none")) is None


def test_a_sweep_with_one_bad_job_is_refused_whole_before_anything_exists(run_cli, capfd, mlflow_client,
                                                                          tmp_path) -> None:
    code = run_cli("hydra.mode=MULTIRUN", "optim.lr=0.05,0", "seed=0,1", *TINY)
    out, err = capfd.readouterr()
    assert code == 2, out + err
    assert "Sweep refused: 2 of its 4 jobs would fail validation, so none was launched" in err
    assert "job 2 (optim.lr=0 seed=0):\n    optim.lr=0 is not allowed; it must be a number > 0" in err
    assert "job 3 (optim.lr=0 seed=1):" in err and "job 0 " not in err and "job 1 " not in err
    assert "Traceback" not in out + err
    assert not mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert not (tmp_path / "outputs" / "multiruns").exists(), "no sweep folder"


def test_a_valid_sweep_prints_the_ui_line_once(run_cli, capfd, mlflow_client) -> None:
    assert run_cli("hydra.mode=MULTIRUN", "seed=0,1", *TINY, "monitor=off") == 0
    out = "".join(capfd.readouterr())
    assert out.count("Open the UI:") == 1 and out.count("Run page:") == 2, out[-3000:]
    assert "Dashboard:" in out and "/artifacts/dashboard/gradient_health.html" in out
    parent = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()],
                                       "tags.sweep_role = 'parent'")[0]
    assert [a.path for a in mlflow_client.list_artifacts(parent.info.run_id, "dashboard")] == [
        "dashboard/gradient_health.html"]
