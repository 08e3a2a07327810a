"""`python scripts/forensics_cost.py`: what the forensics snapshot costs — host memory and time per flush window.

    OMP_NUM_THREADS=1 python scripts/forensics_cost.py                    # ResNet-152 at width 1, SGD m0.9, CPU
    python scripts/forensics_cost.py --model vgg19 --optim adam --device cuda

Builds the network the way a run does (`src.models`), makes one SGD/Adam step so the optimizer state
exists, then times `Snapshot.take` (the finiteness check and the copy into reused host buffers) —
the first take allocates, the later ones reuse — and prints the bytes it holds against the weights'
own, and the window of batches at the default cadence. One-off measurement; nothing is logged.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from src.models import lenet5, mlp, resnet152, vgg19
from src.monitor.forensics.snapshot import Snapshot

MODELS = {"resnet152": resnet152, "vgg19": vgg19, "lenet5": lenet5, "mlp": mlp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet152")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--optim", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--every-n-steps", type=int, default=10, help="the flush window (trainer.log_every_n_steps)")
    parser.add_argument("--step-batch", type=int, default=8, help="the batch of the one step that makes the state")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--time-step", action="store_true", help="also time one training step at --batch-size")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    kwargs = {"width": args.width} if args.model in ("resnet152", "vgg19") else {}
    net = MODELS[args.model](in_channels=3, num_classes=10, image_size=32, **kwargs).to(device)
    opt = (torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9) if args.optim == "sgd"
           else torch.optim.Adam(net.parameters(), lr=1e-3))
    x = torch.randn(args.step_batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.step_batch,), device=device)
    F.cross_entropy(net(x), y).backward()
    opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    snapshot, times = Snapshot(), []
    for step in range(args.repeats + 1):
        sync()
        start = time.perf_counter()
        assert snapshot.take(step, net, opt)
        sync()
        times.append(time.perf_counter() - start)
    weights = sum(t.nbytes for t in net.state_dict().values())
    window = args.batch_size * (x[0].nbytes + y[0].nbytes)
    mib = 2**20
    print(f"{args.model} width {args.width}, {args.optim}, {device}, threads {torch.get_num_threads()}")
    print(f"  parameters            {sum(p.numel() for p in net.parameters()):,}")
    print(f"  state_dict            {weights / mib:8.1f} MiB")
    print(f"  snapshot (host)       {snapshot.nbytes / mib:8.1f} MiB  ({snapshot.nbytes / weights:.2f} x state_dict)")
    print(f"  first take            {times[0] * 1e3:8.1f} ms  (allocates the host buffers)")
    print(f"  later takes (median)  {statistics.median(times[1:]) * 1e3:8.1f} ms  (check + copy, once per window)")
    if args.time_step:
        xb = torch.randn(args.batch_size, 3, 32, 32, device=device)
        yb = torch.randint(0, 10, (args.batch_size,), device=device)
        sync()
        start = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(net(xb), yb).backward()
        opt.step()
        sync()
        step_s = time.perf_counter() - start
        per_step = statistics.median(times[1:]) / args.every_n_steps
        print(f"  one training step     {step_s * 1e3:8.1f} ms  (batch {args.batch_size}): the snapshot adds "
              f"{per_step / step_s:.2%} a step at one take per {args.every_n_steps} steps")
    print(f"  batches kept          {window * args.every_n_steps / mib:8.1f} MiB  ({args.every_n_steps} steps of "
          f"batch {args.batch_size}, by reference on the device)")


if __name__ == "__main__":
    main()
