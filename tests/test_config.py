"""The real config composes and instantiates for every model x data x optim combination,
shape settings follow the data by interpolation, and run directories are unique."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hydra.utils import instantiate

from src.paths import CONFIG_DIR
from src.training.builders import build_module

MODELS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml"))
OPTIMS = sorted(p.stem for p in (CONFIG_DIR / "optim").glob("*.yaml"))
SCHEDS = sorted(p.stem for p in (CONFIG_DIR / "sched").glob("*.yaml"))


def test_the_groups_the_design_names_exist() -> None:
    assert {"lenet5", "resnet152", "vgg19"} <= set(MODELS)
    assert {"mnist5k", "digits", "mnist", "cifar10", "synthetic"} <= set(DATA)
    assert {"sgd", "adam", "adamw"} <= set(OPTIMS) and {"none", "cosine", "step"} <= set(SCHEDS)


@pytest.mark.parametrize("model, data", list(itertools.product(MODELS, DATA)))
def test_every_combination_composes_and_instantiates(compose, model: str, data: str) -> None:
    thin = ["model.width=0.0625"] if model in ("resnet152", "vgg19") else []  # full depth, small width
    cfg = compose(f"model={model}", f"data={data}", *thin)
    datamodule = instantiate(cfg.data)
    assert (datamodule.in_channels, datamodule.num_classes) == (cfg.model.in_channels, cfg.model.num_classes)
    for optim in OPTIMS:
        cfg = compose(f"model={model}", f"data={data}", f"optim={optim}", "sched=step", *thin)
        module = build_module(cfg)
        optimizer = module.configure_optimizers()["optimizer"]
        assert type(optimizer).__name__.lower() == optim
        assert optimizer.param_groups[0]["lr"] == cfg.optim.lr


def test_model_shape_follows_the_data(compose) -> None:
    cfg = compose("model=vgg19", "data=synthetic", "data.in_channels=5", "data.num_classes=3", "data.image_size=48")
    assert (cfg.model.in_channels, cfg.model.num_classes, cfg.model.image_size) == (5, 3, 48)


def test_run_directories_are_unique_to_the_microsecond(compose) -> None:
    first, second = compose(hydra_node=True), compose(hydra_node=True)
    for cfg in (first, second):
        for folder in (cfg.hydra.run.dir, cfg.hydra.sweep.dir):
            assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}", Path(folder).name)
    assert first.hydra.run.dir != second.hydra.run.dir


def test_trainer_keys_are_reachable(compose, tmp_path: Path) -> None:
    cfg = compose("trainer.max_epochs=3", "trainer.max_steps=7", "trainer.limit_train_batches=5",
                  "trainer.accelerator=cpu", "data.batch_size=8")
    trainer = instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False, enable_checkpointing=False)
    assert (trainer.max_epochs, trainer.max_steps, trainer.limit_train_batches) == (3, 7, 5)
    assert cfg.data.batch_size == 8
