"""The calibration zoo: small networks whose gradient health is known by construction, and how to run one.

Each case is a real `ClassificationModule` with the real `GradientHealthMonitor` (default thresholds)
in a real Lightning `fit` on CPU, logging into an in-memory sink; `expected` is the verdict the
network was built to earn. Healthy cases train (their accuracy is checked too), among them nets unlike the
others: one that learns slowly (a small learning rate) and one with an over-confident init (its loss starts
far above ln C and falls); failing cases are built to vanish (deep sigmoid, tanh with a tiny init), to be
dead (ReLU units switched off by a large negative bias: `dead_units` first, then `stalled`; one dead layer in
the middle, whose cut leaves exact zeros below it; plain VGG-19; a plain deep CNN), to have a layer zeroed by
a regularizer (`zeroed_weights`), to learn nothing while their gradients look alive (`plateau`: a sigmoid
LeNet-5 over 2,000 steps), to explode (N(0, 1) init; a learning rate too high for SGD and for Adam).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from src.models import lenet5, mlp, resnet152, vgg19
from src.monitor import GradientHealthMonitor
from src.training.data import MNIST5kDataModule, SyntheticDataModule
from src.training.module import ClassificationModule
from src.training.regularizers import L1, L2, ElasticNet
from tests.memory_sink import MemoryLogger

SGD = partial(torch.optim.SGD, lr=0.05, momentum=0.9)
ADAM = partial(torch.optim.Adam, lr=1e-3)
SGD_SLOW = partial(torch.optim.SGD, lr=0.01, momentum=0.9)
SGD_TINY = partial(torch.optim.SGD, lr=1e-9)  # the exploded network barely moves: the explosion is sustained


@dataclass(frozen=True)
class Case:
    name: str
    expected: str  # `healthy` or the verdict the net is built to earn
    net: Callable[[], nn.Module]
    steps: int
    optimizer: Callable[..., torch.optim.Optimizer] = SGD
    regularizers: Callable[[], list[Any]] = list
    data: dict[str, Any] = field(default_factory=lambda: {"in_channels": 1, "image_size": 8})
    min_accuracy: float = 0.0  # healthy cases: the training accuracy they must reach
    also: tuple[str, ...] = ()  # kinds that must fire too, after the verdict's (a dead net stalls as well)
    slow: bool = False


@dataclass
class Result:
    verdict: str
    first_step: int | None
    events: list[Any]
    logger: MemoryLogger
    monitor: GradientHealthMonitor
    train_acc: float


def dead_relu_mlp(bias: float = -10.0) -> nn.Module:
    """A ReLU MLP whose hidden units are all off: biases far below any pre-activation."""
    net = mlp(in_channels=1, image_size=8, depth=4, width=64, activation="relu", init="kaiming")
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Linear) and module.out_features != 10:
                module.bias.fill_(bias)
    return net


def dead_layer_mlp(layer: int = 3, bias: float = -10.0) -> nn.Module:
    """A ReLU MLP whose `layer`-th linear layer's units are all off: a cut in the middle, exact zeros in every
    gradient below it; the layers above still learn (their biases, PyTorch's init, feed them)."""
    net = mlp(in_channels=1, image_size=8, depth=6, width=64, activation="relu")  # PyTorch's init: biases != 0
    linear = [m for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        linear[layer].bias.fill_(bias)
    return net


def overconfident_mlp(scale: float = 30.0) -> nn.Module:
    """A Kaiming ReLU MLP whose output layer is `scale` times too large: confident wrong logits, an initial loss
    far above ln C that falls from the first step (a healthy net the old warm-up called `divergence`)."""
    net = mlp(in_channels=1, image_size=8, depth=4, width=64, activation="relu", init="kaiming")
    linear = [m for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        linear[-1].weight.mul_(scale)
    return net


def plain_cnn(depth: int = 12, channels: int = 16) -> nn.Module:
    """A plain deep CNN without normalization or shortcuts: `depth` 3x3 conv + ReLU layers (PyTorch's default
    init), then a linear classifier, on 1x8x8 inputs."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * 64, 10))


def run_case(case: Case, seed: int = 0, **monitor: Any) -> Result:
    """Train `case` for its steps with the default monitor (settings in `monitor` override); its verdict."""
    pl.seed_everything(seed, verbose=False)
    if case.data.get("mnist5k"):
        data = MNIST5kDataModule(batch_size=32, seed=seed)
    else:
        data = SyntheticDataModule(num_samples=case.data.get("num_samples", 1024), noise=case.data.get("noise", 1.0),
                                   in_channels=case.data["in_channels"], image_size=case.data["image_size"],
                                   batch_size=case.data.get("batch_size", 32), seed=seed, num_classes=10)
    module = ClassificationModule(net=case.net(), optimizer=case.optimizer, num_classes=10,
                                  regularizers=case.regularizers())
    settings = {"every_n_steps": 10, "plots": False, **monitor}
    health = GradientHealthMonitor(**settings)
    logger = MemoryLogger()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=case.steps, max_epochs=-1, logger=logger, callbacks=[health],
        log_every_n_steps=10, limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    verdict = health.verdict()
    acc = float(trainer.callback_metrics.get("train/acc", float("nan")))
    return Result(verdict.kind, verdict.first_event_step, health.state.log.events, logger, health, acc)


def _synthetic_rgb(size: int = 16) -> dict[str, Any]:
    return {"in_channels": 3, "image_size": size, "num_samples": 768, "noise": 1.0, "batch_size": 32}


MLP8 = {"in_channels": 1, "image_size": 8}
# the first study's dead net: plain VGG-19 (VGG-19's defaults are now batch norm and the CIFAR init, which train)
PLAIN_VGG = partial(vgg19, in_channels=1, width=0.125, batch_norm=False, init="torchvision")
L2_REG = partial(lambda: [L2(1e-4)])
HEALTHY = [
    Case("lenet5-mnist5k", "healthy", lenet5, 120, data={"mnist5k": True}, min_accuracy=0.5),
    Case("lenet5-mnist5k-l2", "healthy", lenet5, 120, regularizers=L2_REG, data={"mnist5k": True}, min_accuracy=0.5),
    Case("lenet5-mnist5k-l1-adam", "healthy", lenet5, 120, optimizer=ADAM, regularizers=lambda: [L1(1e-4)],
         data={"mnist5k": True}, min_accuracy=0.5),
    Case("mlp-relu-kaiming", "healthy", partial(mlp, in_channels=1, image_size=8, depth=6, width=64, init="kaiming"),
         150, optimizer=SGD_SLOW, data=MLP8, min_accuracy=0.5),
    Case("mlp-relu-kaiming-elasticnet", "healthy",
         partial(mlp, in_channels=1, image_size=8, depth=6, width=64, init="kaiming"), 150, optimizer=SGD_SLOW,
         regularizers=lambda: [ElasticNet(1e-4)], data=MLP8, min_accuracy=0.5),
    Case("mlp-relu-kaiming-small-lr", "healthy",
         partial(mlp, in_channels=1, image_size=8, depth=6, width=64, init="kaiming"), 400,
         optimizer=partial(torch.optim.SGD, lr=3e-4), data=MLP8, min_accuracy=0.25),
    Case("mlp-overconfident-init-adam", "healthy", overconfident_mlp, 150, optimizer=ADAM, data=MLP8,
         min_accuracy=0.5),
    Case("vgg19-bn-w1/8-mnist5k", "healthy", partial(vgg19, in_channels=1, batch_norm=True, width=0.125), 300,
         data={"mnist5k": True}, min_accuracy=0.15, slow=True),
    Case("resnet152-w1/16-mnist5k", "healthy", partial(resnet152, in_channels=1, width=0.0625), 110,
         data={"mnist5k": True}, min_accuracy=0.25, slow=True),
    Case("resnet152-w1/16-synthetic-l2", "healthy", partial(resnet152, in_channels=3, width=0.0625), 80,
         regularizers=L2_REG, data=_synthetic_rgb(), min_accuracy=0.3, slow=True),
]
FAILING = [
    Case("sigmoid-20-deep", "vanishing", partial(mlp, in_channels=1, image_size=8, depth=20, width=64,
                                                 activation="sigmoid"), 60, data=MLP8),
    Case("sigmoid-20-deep-l2", "vanishing", partial(mlp, in_channels=1, image_size=8, depth=20, width=64,
                                                    activation="sigmoid"), 60, regularizers=L2_REG, data=MLP8),
    Case("tanh-12-tiny-init", "vanishing", partial(mlp, in_channels=1, image_size=8, depth=12, width=64,
                                                 activation="tanh", init="normal", init_std=0.01), 80, data=MLP8),
    Case("tanh-12-tiny-init-l2", "vanishing", partial(mlp, in_channels=1, image_size=8, depth=12, width=64,
                                                    activation="tanh", init="normal", init_std=0.01), 80,
         regularizers=L2_REG, data=MLP8),
    Case("vgg19-w1/8-mnist5k", "stalled", PLAIN_VGG, 80, data={"mnist5k": True}),
    Case("vgg19-w1/8-mnist5k-l2", "stalled", PLAIN_VGG, 80, regularizers=L2_REG, data={"mnist5k": True}),
    Case("relu-dead-bias", "dead_units", dead_relu_mlp, 80, data=MLP8, also=("stalled",)),
    Case("relu-dead-bias-l1", "dead_units", dead_relu_mlp, 80, regularizers=lambda: [L1(1e-4)], data=MLP8,
         also=("stalled",)),
    Case("relu-N(0,1)-init", "exploding", partial(mlp, in_channels=1, image_size=8, depth=10, width=64,
                                                  init="normal", init_std=1.0), 40, optimizer=SGD_TINY, data=MLP8),
    Case("relu-N(0,1)-init-l2", "exploding", partial(mlp, in_channels=1, image_size=8, depth=10, width=64,
                                                     init="normal", init_std=1.0), 40, optimizer=SGD_TINY,
         regularizers=L2_REG, data=MLP8),
    Case("relu-N(0,1)-init-sgd", "nonfinite", partial(mlp, in_channels=1, image_size=8, depth=10, width=64,
                                                      init="normal", init_std=1.0), 40, data=MLP8),
    Case("lenet5-sgd-lr-too-high", "divergence", lenet5, 60, optimizer=partial(torch.optim.SGD, lr=20.0),
         data={"mnist5k": True}),
    Case("lenet5-sgd-lr-too-high-l2", "divergence", lenet5, 60, optimizer=partial(torch.optim.SGD, lr=20.0),
         regularizers=L2_REG, data={"mnist5k": True}),
    Case("relu-dead-layer-mid", "dead_units", dead_layer_mlp, 80, data=MLP8, also=("stalled",)),
    Case("mlp-l1-proximal-zeroes", "zeroed_weights",
         partial(mlp, in_channels=1, image_size=8, depth=4, width=64, init="kaiming"), 60,
         regularizers=lambda: [L1(1.0, proximal=True)], data=MLP8),
    Case("cnn-plain-12", "dead_units", plain_cnn, 100, data=MLP8),
    Case("lenet5-sigmoid-2000", "plateau", partial(lenet5, activation="sigmoid"), 2000, data={"mnist5k": True},
         slow=True),
    Case("mlp-adam-lr-too-high", "exploding", partial(mlp, in_channels=1, image_size=8, depth=8, width=64),
         150, optimizer=partial(torch.optim.Adam, lr=1.0), data=MLP8),
    Case("mlp-adam-lr-too-high-l1", "exploding", partial(mlp, in_channels=1, image_size=8, depth=8, width=64),
         150, optimizer=partial(torch.optim.Adam, lr=1.0), regularizers=lambda: [L1(1e-4)], data=MLP8),
]
ZOO = HEALTHY + FAILING
