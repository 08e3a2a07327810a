"""The second edition's report end to end: a mini block (`experiment=study2_mini`: LeNet-5 on digits, 30 steps,
a learning rate that overflows) with `none`, a rescue (`clip`) and a regularizer on top of the rescue
(`clip+l2_1e-3`), 2 seeds, through the real multirun entry point into a fresh MLflow store, then the study
report read back: pairing stated, the rescue's arm compared with the rescue, the dose of the steps run, and
every number of the generated tables found in `study.json`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from src.report.prose_numbers import numbers_in_prose
from src.report.study import build_cells, study_runs
from src.report.study_document import write_study_report
from src.report.study_json import study_numbers

BLOCK = """# @package _global_
# A mini block of the second edition (test only): LeNet-5 (ReLU) on digits at SGD lr 1.5, 30 steps.
defaults:
  - override /data: digits
  - override /model: lenet5
  - override /sched: none
model:
  activation: relu
optim:
  lr: 1.5
trainer:
  max_epochs: -1
  max_steps: 30
  log_every_n_steps: 5
  enable_progress_bar: false
  limit_val_batches: 1
  limit_test_batches: 1
monitor:
  test_after_divergence: true
  plots: false
logger:
  experiment_name: study2
"""
RESCUE_PLUS_L2 = """# @package _global_
# The rescue `clip` with L2 λ = 1e-3 on top (test only).
defaults:
  - /study/arm/clip
  - /study/arm/l2_1e-3
"""


@pytest.mark.slow  # 6 runs of 30 steps: 1-5 min on a shared 2-core machine
def test_a_mini_block_is_reported_paired_with_doses_and_numbers_from_the_data(
        tmp_path: Path, data_dir: Path, mlflow_client, monkeypatch: pytest.MonkeyPatch) -> None:
    from src.train import main

    conf = tmp_path / "conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "study" / "arm").mkdir(parents=True)
    (conf / "experiment" / "study2_mini.yaml").write_text(BLOCK)
    (conf / "study" / "arm" / "clip+l2_1e-3.yaml").write_text(RESCUE_PLUS_L2)
    argv = ["src.train", "-m", "experiment=study2_mini", "+study/arm=none,clip,clip+l2_1e-3", "seed=0,1",
            f"hydra.searchpath=[file://{conf}]", f"paths.log_dir={tmp_path / 'outputs'}",
            f"paths.data_dir={data_dir}", f"hydra.sweep.dir={tmp_path / 'sw'}"]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, f"the mini block exited {exc.code}"

    runs = study_runs(mlflow_client, "study2")
    assert sorted({(r.condition, r.arm) for r in runs}) == [("mini", a) for a in ("clip", "clip+l2_1e-3", "none")]
    assert all(r.steps and r.states and r.params.get("optim.lr") == "1.5" for r in runs)
    cells = build_cells(runs)
    assert [c.arm for c in cells] == ["none", "clip", "clip+l2_1e-3"]
    assert [c.reference for c in cells] == [None, "none", "clip"]

    md = write_study_report(mlflow_client, "study2", tmp_path / "report", "test")
    text = md.read_text()
    data = json.loads((tmp_path / "report" / "study.json").read_text())
    top = next(c for c in data["cells"] if c["arm"] == "clip+l2_1e-3")
    assert top["vs_reference"]["test/acc"]["method"] == "paired" and top["pairing"]["matched"] == ["0", "1"]
    for dose, seed in zip(top["doses"], top["seeds"], strict=True):  # 2ηλT/(1 − β) with the steps each run made
        steps = top["values"][seed]["steps"]
        assert 0 < steps <= 30 and dose["decay"] == pytest.approx(2 * 1.5 * 1e-3 * steps / (1 - 0.9))
    assert sum(top["time_in_states"]["mean"].values()) == pytest.approx(1.0)
    nums = study_numbers(data)
    assert "paired by seed with `clip`, n=2" in text and nums["mini/clip+l2_1e-3/decay"] in text
    assert nums["mini/clip/acc_tost"] in text and nums["fixed_early/all"] in text
    tables = text[text.index("## `mini`"):]
    assert numbers_in_prose(tables, data) == []  # every number of the generated tables is in the data
    assert (tmp_path / "report" / "verdict_heatmap.png").stat().st_size > 0
    assert (tmp_path / "report" / "dose_response.png").stat().st_size > 0
