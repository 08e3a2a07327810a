"""Gradient flow at one optimizer step as an MLflow step image: the UI's image slider then plays the
flow over time, step by step, beside the metric charts.

`render_flow_image` is pure (arrays in, a small PNG-ready image out); `log_flow_image` renders and logs
it with `MlflowClient.log_image(run_id, image, key=key, step=step)`, which stores it under
`images/<key>+step+<step>+...` for the UI. One image: per-layer bars of log10 of the values at `step`
(layers in forward order, input side left), the few steps before it as thin lines (how the flow was
changing), and a cross under each layer whose value is zero or not finite (no logarithm to draw).
Values are whatever per-layer quantity the caller passes, e.g. the data gradient's L2 norm per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IMAGE_SIZE_IN = (4.8, 3.0)  # inches at DPI: 480 x 300 pixels, a few tens of kB
DPI = 100
MAX_TICK_LABELS = 12  # more layers than this (ResNet-152): every n-th layer is labelled
TICK_PT = 6  # font size of the layer labels, points


def _checked(
    steps: Sequence[int], layer_values: Any, labels: Sequence[str], step: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(steps, values, row of `step`), or a ValueError naming the argument that does not fit."""
    steps_arr = np.asarray(steps, dtype=np.int64).reshape(-1)
    values = np.asarray(layer_values, dtype=np.float64)
    if values.ndim != 2 or values.shape != (len(steps_arr), len(labels)):
        raise ValueError(
            f"layer_values has shape {values.shape}; it must be (len(steps), len(labels)) = "
            f"({len(steps_arr)}, {len(labels)}): one row per step, one column per layer"
        )
    if len(labels) == 0:
        raise ValueError("labels is empty; it must name at least one layer")
    rows = np.flatnonzero(steps_arr == step)
    if rows.size == 0:
        shown = f"{steps_arr.min()}..{steps_arr.max()}" if steps_arr.size else "none"
        raise ValueError(f"step={step} is not one of the steps given (steps: {shown})")
    return steps_arr, values, int(rows[-1])


def flow_figure(
    steps: Sequence[int],
    layer_values: Any,
    labels: Sequence[str],
    step: int,
    history: int = 4,
    quantity: str = "layer gradient norm",
) -> Any:
    """The drawn matplotlib `Figure` of the flow at `step`, with up to `history` earlier rows as lines.

    Made with `matplotlib.figure.Figure` and its Agg canvas, not `pyplot`: the monitor renders on its
    background writer thread while the training thread may draw too, and pyplot's global figure
    registry is not thread-safe. Laid out by `_margins` (fixed arithmetic on the font sizes), not
    `tight_layout`, which lays the text out a second time (about a third of a render under cProfile),
    paid `flow_images` times a run."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps_arr, values, row = _checked(steps, layer_values, labels, step)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(values) & (values > 0), np.log10(values), np.nan)
    x = np.arange(len(labels))
    fig = Figure(figsize=IMAGE_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    every = max(1, int(np.ceil(len(labels) / MAX_TICK_LABELS)))
    shown = [str(labels[i]) for i in x[::every]]
    fig.subplots_adjust(**_margins(max(map(len, shown))))
    ax = fig.add_subplot()
    earlier = [r for r in range(row) if steps_arr[r] < step][-history:] if history > 0 else []
    for age, r in enumerate(reversed(earlier), start=1):
        ax.plot(x, logs[r], color="0.45", lw=0.8, alpha=max(0.15, 0.6 - 0.12 * age),
                label=f"steps {steps_arr[earlier[0]]}..{steps_arr[earlier[-1]]}" if age == 1 else None)
    current = logs[row]
    finite = np.isfinite(current)
    lowest = np.nanmin(logs) if np.isfinite(logs).any() else 0.0
    base = np.floor(lowest) - 0.5
    ax.bar(x[finite], current[finite] - base, bottom=base, color="tab:blue", width=0.8, label=f"step {step}")
    if not finite.all():
        ax.plot(x[~finite], np.full((~finite).sum(), base), "x", color="tab:red", ms=7, mew=2,
                label="zero or non-finite", clip_on=False)
    ax.set_xticks(x[::every], shown, rotation=60, ha="right", rotation_mode="anchor", fontsize=TICK_PT)
    ax.set_ylabel(f"log10 {quantity}", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    # y given: matplotlib skips the title's auto-placement, which lays out the x axis's text once more
    ax.set_title(f"gradient flow, step {step} (input side left)", fontsize=9, y=1.0, pad=4)
    ax.legend(fontsize=6, loc="best", frameon=False)
    fig.canvas.draw()
    return fig


def _margins(longest_label: int) -> dict[str, float]:
    """Subplot margins (figure fractions) that hold the text: the x tick labels, `TICK_PT` points and
    rotated 60°, reach down about 0.55 em per character times sin 60° (plus a line's height); the y side holds
    tick labels like "-12.5" and the axis label; the top holds the title."""
    width_in, height_in = IMAGE_SIZE_IN
    below_pt = longest_label * 0.55 * TICK_PT * np.sin(np.radians(60)) + TICK_PT + 8
    return {"left": 54 / 72 / width_in, "right": 0.97, "top": 1 - 20 / 72 / height_in,
            "bottom": float(np.clip(below_pt / 72 / height_in, 0.12, 0.6))}


def render_flow_image(*args: Any, **kwargs: Any) -> Any:
    """The image (PIL, RGB) of the flow at a step: `flow_figure`'s arguments, its figure's pixels."""
    from PIL import Image

    fig = flow_figure(*args, **kwargs)
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())


def log_flow_image(
    client: Any,
    run_id: str,
    steps: Sequence[int],
    layer_values: Any,
    labels: Sequence[str],
    step: int,
    key: str = "gradient_flow",
    **render: Any,
) -> Any:
    """Render the flow at `step` (`render_flow_image`, its keywords in `render`) and log it as the run's
    step image `key` at `step`; returns the image."""
    image = render_flow_image(steps, layer_values, labels, step, **render)
    client.log_image(run_id, image, key=key, step=int(step))
    return image
