"""What the instruments add to the pictures: the gradient-flow line figure gains a signal and a dead-fraction
panel, and a run logs a handful of gradient-flow step images, evenly spaced, for MLflow's image view."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from src.monitor.flow_images import FlowImages
from src.monitor.plots import save_gradient_flow
from src.tracking.logger import RunLogger

LABELS = [f"{i:02d}.features.{i}" for i in range(5)]


def test_line_figure_gains_signal_and_dead_panels(tmp_path: Path) -> None:
    steps = np.arange(40)
    rel = np.outer(np.ones(40), np.logspace(-4, -1, 5))
    sampled = np.arange(0, 40, 10)
    panels = {"signal": (sampled, np.outer(np.ones(4), np.logspace(-8, -2, 5))),
              "dead": (sampled, np.linspace(0, 1, 20).reshape(4, 5))}
    [_, plain] = save_gradient_flow(steps, rel, LABELS, tmp_path / "plain")
    [_, rich] = save_gradient_flow(steps, rel, LABELS, tmp_path / "rich", panels=panels)
    [_, empty] = save_gradient_flow(steps, rel, LABELS, tmp_path / "empty",
                                    panels={"dead": (np.zeros(0, dtype=int), np.zeros((0, 5)))})
    height = {name: Image.open(p).size[1] for name, p in (("plain", plain), ("rich", rich), ("empty", empty))}
    assert height["rich"] > height["plain"] == height["empty"]  # two panels more; none without samples


def _images(client, run_id: str) -> list[int]:  # noqa: ANN001
    steps = []
    for item in client.list_artifacts(run_id, "images"):
        match = re.fullmatch(r"images/gradient_flow\+step\+(\d+)\+.*\.png", item.path)
        if match:
            steps.append(int(match[1]))
    return sorted(steps)


def test_a_handful_of_evenly_spaced_flow_images(mlflow_client) -> None:  # noqa: ANN001
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("images")).info.run_id
    sink = RunLogger(mlflow_client, run_id)
    images = FlowImages(4, SimpleNamespace(estimated_stepping_batches=100))  # planned at 0, 33, 66, 99
    rng = np.random.default_rng(0)
    for first in range(0, 100, 10):  # one flush every 10 steps
        steps = np.arange(first, first + 10)
        images.log(sink, steps, rng.uniform(1e-4, 1, (10, len(LABELS))), LABELS)
    assert _images(mlflow_client, run_id) == [9, 39, 69, 99]  # the flush that reaches each planned step
    none = FlowImages(0, SimpleNamespace(estimated_stepping_batches=100))
    none.log(sink, np.arange(10), np.ones((10, 5)), LABELS)
    assert len(_images(mlflow_client, run_id)) == 4
