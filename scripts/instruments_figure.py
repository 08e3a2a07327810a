"""The instruments of two runs side by side — a net that dies beside one that trains — from MLflow.

    python scripts/instruments_figure.py <dead run id> <healthy run id> --out docs/images/instruments_dead_vs_trains.png

Per run (a column): the back-propagated signal ‖∂L/∂z‖ per layer (log10 RMS, dark = input side), the dead
ReLU fraction per layer, and sharpness λ_max against 2/η, all from the run's `signal/…`, `dead/…` and
`sharpness/…` metrics (`MLFLOW_TRACKING_URI` or the project's store).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def series(client, run_id: str, prefix: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # noqa: ANN001
    """{label: (steps, values)} of the run's `prefix/<NN>.<layer>` metrics, in forward order."""
    start = len(prefix) + 1
    metrics = client.get_run(run_id).data.metrics
    keys = sorted(k for k in metrics if k.startswith(prefix + "/") and k[start:start + 1].isdigit())
    out = {}
    for key in keys:
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        out[key[start:]] = (np.array([s for s, _ in history]), np.array([v for _, v in history]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dead")
    parser.add_argument("healthy")
    parser.add_argument("--out", default="docs/images/instruments_dead_vs_trains.png")
    parser.add_argument("--titles", nargs=2, default=["dies", "trains"])
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient

    from src.tracking.store import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri())
    fig, axes = plt.subplots(3, 2, figsize=(11, 9), sharex="col", sharey="row", layout="constrained")
    for col, (run_id, title) in enumerate(zip((args.dead, args.healthy), args.titles, strict=True)):
        for row, prefix in enumerate(("signal", "dead")):
            ax = axes[row, col]
            curves = series(client, run_id, prefix)
            colors = plt.get_cmap("plasma")(np.linspace(0, 0.9, max(1, len(curves))))
            for color, (label, (steps, values)) in zip(colors, curves.items(), strict=True):
                shown = np.log10(np.maximum(values, 1e-30)) if prefix == "signal" else values
                ax.plot(steps, shown, color=color, lw=0.9, label=label)
            ax.set_ylabel("log10 signal ‖∂L/∂z‖ (RMS)" if prefix == "signal" else "dead ReLU fraction")
            if row == 0:
                ax.set_title(title, fontsize=9)
        ax = axes[2, col]
        for key, style in (("sharpness/lambda_max", "-o"), ("sharpness/two_over_lr", "--")):
            history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
            if history:
                steps, values = zip(*history, strict=True)
                ax.plot(steps, values, style, ms=3, label=key.split("/")[1].replace("two_over_lr", "2/η"))
        ax.set_yscale("log")
        ax.set_ylabel("sharpness")
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=7)
    mappable = plt.cm.ScalarMappable(cmap="plasma", norm=plt.Normalize(0, 1))
    fig.colorbar(mappable, ax=axes[:2, :], label="layer depth (0 = input side, 1 = output side)", shrink=0.8)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
