"""Gradient flow as step images: rendered from per-layer values, logged with MlflowClient.log_image, and
listed by MlflowClient under their key and step; bad input is refused with the argument named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from src.tracking.step_images import log_flow_image, render_flow_image

LABELS = [f"{i:02d}.features.{i}" for i in range(6)]
STEPS = [0, 5, 10, 15]
VALUES = np.outer([1.0, 0.5, 0.2, 0.1], np.logspace(-6, 0, len(LABELS)))  # vanishing towards the input


def logged_images(client: MlflowClient, run_id: str) -> dict[tuple[str, int], str]:
    """{(key, step): path} of the run's step images, from MLflow's `images/<key>+step+<n>+...png` names."""
    found = {}
    for item in client.list_artifacts(run_id, "images"):
        match = re.fullmatch(r"images/(.+)\+step\+(\d+)\+timestamp\+\d+\+[-0-9a-f]+\.png", item.path)
        if match:
            found[(match[1], int(match[2]))] = item.path
    return found


def test_each_logged_step_is_listed_under_its_key(mlflow_client: MlflowClient, tmp_path: Path) -> None:
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("flow")).info.run_id
    for step in (5, 15):
        log_flow_image(mlflow_client, run_id, STEPS, VALUES, LABELS, step)
    log_flow_image(mlflow_client, run_id, STEPS, VALUES, LABELS, 10, key="signal_flow", history=0)
    images = logged_images(mlflow_client, run_id)
    assert set(images) == {("gradient_flow", 5), ("gradient_flow", 15), ("signal_flow", 10)}
    png = Path(mlflow_client.download_artifacts(run_id, images[("gradient_flow", 15)], str(tmp_path)))
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (300, 480, 3) and png.stat().st_size < 150_000
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # drawn, not blank


def test_the_bars_follow_the_values_at_that_step() -> None:
    def blue_columns(step: int) -> np.ndarray:
        pixels = np.asarray(render_flow_image(STEPS, VALUES, LABELS, step, history=0)).astype(int)
        blue = (abs(pixels[..., 0] - 31) < 30) & (abs(pixels[..., 1] - 119) < 30) & (pixels[..., 2] > 150)
        return blue.sum(axis=0)

    assert blue_columns(0).sum() > 0
    assert not np.array_equal(blue_columns(0), blue_columns(15))


def test_zero_and_non_finite_layers_are_marked() -> None:
    values = VALUES.copy()
    values[-1, 2], values[-1, 3] = 0.0, np.nan
    pixels = np.asarray(render_flow_image(STEPS, values, LABELS, 15)).astype(int)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 20
    clean = np.asarray(render_flow_image(STEPS, VALUES, LABELS, 15)).astype(int)
    assert ((clean[..., 0] > 180) & (clean[..., 1] < 80) & (clean[..., 2] < 80)).sum() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"layer_values": VALUES[:, :3]}, r"layer_values has shape \(4, 3\); it must be \(len\(steps\), len\(labels\)\)"),
     ({"step": 7}, r"step=7 is not one of the steps given \(steps: 0\.\.15\)"),
     ({"labels": [], "layer_values": np.zeros((4, 0))}, "labels is empty")],
)
def test_bad_input_is_refused_naming_the_argument(kwargs: dict, message: str) -> None:
    args = {"steps": STEPS, "layer_values": VALUES, "labels": LABELS, "step": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        render_flow_image(**args)


@pytest.mark.parametrize(
    "labels",
    [LABELS,  # LeNet-5-like: a few short names
     [f"{i:03d}.layer{1 + i // 40}.{i % 8}.downsample.0" for i in range(155)]],  # ResNet-152-like: many, long
)
def test_every_text_of_the_fixed_layout_lies_inside_the_image(labels: list[str]) -> None:
    """The margins are arithmetic on the font sizes, not `tight_layout`: the tick labels, axis label, title and
    legend must still fit, from the shortest to the longest layer names (a label cut off by the edge fails)."""
    from matplotlib.text import Text

    from src.tracking.step_images import flow_figure

    values = np.abs(np.random.default_rng(0).normal(size=(4, len(labels)))) * np.logspace(-12, 0, len(labels))
    values[-1, 1] = np.nan  # the cross and its legend entry drawn too
    fig = flow_figure(STEPS, values, labels, 15)
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
    assert len(texts) >= 8  # tick labels, axis label, title, legend entries
    drawn = fig.get_tightbbox(renderer)  # inches: every drawn artist, text included (ticks off the axis left out)
    width, height = fig.get_size_inches()
    assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01, f"text cut off at the left or bottom: {drawn}"
    assert drawn.x1 <= width + 0.01 and drawn.y1 <= height + 0.01, f"text cut off at the right or top: {drawn}"


def test_rendering_uses_no_pyplot_so_a_background_thread_can_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor renders on its writer thread; pyplot's global figure registry is not thread-safe, so a render
    must not go through it: with pyplot's figure makers made to fail, it still renders."""
    import matplotlib.pyplot as plt

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a step image went through pyplot's global figure registry")

    for maker in ("figure", "subplots", "subplot"):
        monkeypatch.setattr(plt, maker, refuse)
    assert render_flow_image(STEPS, VALUES, LABELS, 15).size == (480, 300)
