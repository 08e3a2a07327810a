"""The sharpness probe on one network, one probe batch, several probe seeds: do the seeds agree?

`python scripts/sharpness_seeds.py [--seeds 0 1 2] [--iterations N]` builds ResNet-152 (batch norm,
residual) at width 1/16 on the bundled MNIST sample at its initialization, takes the first training
batch (32 examples) as the probe and prints every `sharpness/*` value the instrument logs, per seed.
A probe that knows its error gives the same λ_max (within its residual) whatever the start vector.
"""

from __future__ import annotations

import argparse
import json

import pytorch_lightning as pl
import torch

from src.models import resnet152
from src.monitor.instruments.sharpness import SharpnessInstrument
from src.training.data import MNIST5kDataModule
from src.training.module import ClassificationModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=None, help="the instrument's default when omitted")
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()
    pl.seed_everything(0, verbose=False)
    data = MNIST5kDataModule(batch_size=32, seed=0)
    data.prepare_data()
    data.setup("fit")
    x, y = next(iter(data.train_dataloader()))[:2]
    module = ClassificationModule(net=resnet152(in_channels=1, width=0.0625), optimizer=torch.optim.SGD)
    optimizer = torch.optim.SGD(module.parameters(), lr=args.lr, momentum=0.9)
    for seed in args.seeds:
        extra = {} if args.iterations is None else {"iterations": args.iterations}
        probe = SharpnessInstrument(1, batch_size=32, seed=seed, **extra)
        probe.probe = (x, y)
        keys, values = probe.measure(module, optimizer, args.lr)
        print(json.dumps({"seed": seed, **{k: float(v) for k, v in zip(keys, values, strict=True)}}), flush=True)


if __name__ == "__main__":
    main()
