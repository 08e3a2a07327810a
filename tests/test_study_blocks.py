"""The study's blocks (conf/experiment/study_*.yaml): every job composes and validates, and a two-job
slice of each block runs end to end in-process (2 steps) and is read back by the study report."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from src.config.validation import validate
from src.paths import CONFIG_DIR
from src.report.study import arm_family, build_cells, study_runs
from src.report.study_document import write_study_report

BLOCKS = sorted(p.stem.removeprefix("study_") for p in (CONFIG_DIR / "experiment").glob("study_*.yaml"))
REMEDY_KEYS = {"bn": ("model", "batch_norm", True), "resnet_bn": ("model", "norm", "batch"),
               "residual": ("model", "residual", True), "zero_init": ("model", "zero_init_residual", True),
               "init_he": ("model", "init", "kaiming"), "init_glorot": ("model", "init", "xavier"),
               "clip": ("trainer", "gradient_clip_val", 1.0), "lr_small": ("optim", "lr", 0.01)}
REG_KEYS = {"l1": ("l1", "strength"), "l2": ("l2", "strength"), "l2dec": ("l2", "strength"),
            "en": ("elasticnet", "strength"), "dropout": ("dropout", "p")}
TINY = ["trainer.max_steps=2", "trainer.limit_test_batches=1", "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1", "monitor.plots=false"]


def axes(compose, block: str) -> dict[str, list[str]]:
    params = compose(f"experiment=study_{block}", hydra_node=True).hydra.sweeper.params
    return {key: str(values).split(",") for key, values in params.items()}


def test_there_is_a_block_per_phenomenon_and_architecture() -> None:
    for model in ("lenet5", "vgg19", "resnet152"):
        assert {f"{model}_healthy", f"{model}_vanishing", f"{model}_exploding"} <= set(BLOCKS)
    assert {"lenet5_dying", "vgg19_dying"} <= set(BLOCKS)


@pytest.mark.parametrize("block", BLOCKS)
def test_every_job_of_the_block_composes_validates_and_sets_its_arm(compose, block: str) -> None:
    grid = axes(compose, block)
    assert set(grid) == {"+study/arm", "seed"} and len(grid["seed"]) >= 3 and grid["+study/arm"][0] == "none"
    base = compose(f"experiment=study_{block}")
    assert base.logger.experiment_name == "study" and base.trainer.max_steps > 0
    for arm in grid["+study/arm"]:
        cfg = compose(f"experiment=study_{block}", f"+study/arm={arm}", "seed=1")
        validate(cfg)  # a bad key would stop the real sweep before any job
        family, dose = arm_family(arm)
        if family in REG_KEYS:
            name, key = REG_KEYS[family]
            assert list(cfg.reg) == [name] and cfg.reg[name][key] == pytest.approx(dose)
            assert (cfg.reg[name].get("mode") == "decoupled") == (family == "l2dec")
        elif family == "remedy":
            group, key, value = REMEDY_KEYS[arm]
            assert cfg[group][key] == value and base[group].get(key) != value, f"{arm} changes nothing in {block}"
            assert list(cfg.reg) == []
        else:
            assert list(cfg.reg) == [] and cfg.optim.lr == base.optim.lr
        assert cfg.model == base.model or family == "remedy" or family == "dropout"


SLICES = [pytest.param(b, marks=[pytest.mark.slow]) for b in BLOCKS]  # 20-90 s each: slow, every one


@pytest.mark.parametrize("block", SLICES)
def test_a_two_job_slice_runs_end_to_end(block: str, compose, tmp_path: Path, data_dir: Path, mlflow_client,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`none` and the block's last arm, seed 0, 2 steps each, through the real multirun entry point."""
    from src.train import main

    last = axes(compose, block)["+study/arm"][-1]
    argv = ["src.train", "-m", f"experiment=study_{block}", f"+study/arm=none,{last}", "seed=0",
            f"paths.log_dir={tmp_path / 'outputs'}", f"paths.data_dir={data_dir}", f"hydra.sweep.dir={tmp_path / 'sw'}",
            *TINY]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, f"the slice of {block} exited {exc.code}"
    runs = study_runs(mlflow_client, "study")
    assert sorted((r.condition, r.arm) for r in runs) == sorted([(block, "none"), (block, last)])
    assert all(r.verdict for r in runs) and all(r.values["test/acc"] is not None for r in runs)
    cells = build_cells(runs)
    assert [c.arm for c in cells] == ["none", last] and cells[1].vs_reference["test/acc"].method == "paired"
    md = write_study_report(mlflow_client, "study", tmp_path / "report", "test")
    text = md.read_text()
    assert f"## `{block}`" in text and f"`{last}`" in text
    assert (tmp_path / "report" / "verdict_heatmap.png").stat().st_size > 0


def test_arm_families() -> None:
    assert arm_family("l2dec_1e-4") == ("l2dec", 1e-4) and arm_family("dropout_p03") == ("dropout", 0.3)
    assert arm_family("none") == ("none", 0.0) and arm_family("clip") == ("remedy", None)
    assert list(itertools.islice(sorted(["clip", "l1_1e-3", "none", "l1_1e-5"],
                                        key=__import__("src.report.study", fromlist=["arm_order"]).arm_order), 4)) \
        == ["none", "l1_1e-5", "l1_1e-3", "clip"]


def test_the_gpu_scale_study_composes_at_full_width_on_cifar10(compose, monkeypatch: pytest.MonkeyPatch) -> None:
    """`scripts/study.py --scale gpu`: every block at full width on CIFAR-10, on the GPU trainer, 20,000 steps."""
    import argparse
    import importlib.util

    monkeypatch.syspath_prepend(str(CONFIG_DIR.parent / "scripts"))  # its `import study_queue`, as when run there
    spec = importlib.util.spec_from_file_location("study_script", CONFIG_DIR.parent / "scripts" / "study.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert sorted(script.blocks()) == BLOCKS and script.blocks()[0].startswith("lenet5")
    args = argparse.Namespace(scale="gpu", steps=20000, experiment="study_gpu", overrides=[])
    for block in BLOCKS:
        cfg = compose(f"experiment=study_{block}", "+study/arm=none", *script.overrides(block, args))
        validate(cfg)
        assert cfg.data._target_.endswith("CIFAR10DataModule") and cfg.trainer.accelerator == "gpu"
        assert cfg.trainer.max_steps == 20000 and cfg.logger.experiment_name == "study_gpu"
        assert cfg.model.get("width", 1.0) == 1.0 and cfg.model.in_channels == 3
