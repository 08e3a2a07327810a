"""Doses, time in states and the numbers the prose reads: the cumulative L2 decay from a run's own params,
time in each state and the cells fixed before step 30, `study.json`'s named numbers and the checker that
finds numbers in a prose text that the data does not hold."""

from __future__ import annotations

import json

import pytest

from src.report.doses import dose_text, run_dose
from src.report.pooled import pooled_rates
from src.report.prose_numbers import numbers_in_prose
from src.report.study import build_cells
from src.report.study_json import study_numbers, study_record
from src.report.study_read import StudyRun

SGD = {"optim._target_": "torch.optim.SGD", "optim.lr": "0.3", "optim.momentum": "0.9"}


def run(arm: str, seed: int, params: dict[str, str] | None = None, steps: int | None = 150, acc: float = 0.9,
        verdict: str = "healthy", step: int | None = None, states: dict[str, float] | None = None,
        loss: float | None = 2.3) -> StudyRun:
    return StudyRun(f"{arm}{seed}", "lenet5_dying", arm, str(seed), seed, verdict, step,
                    {"test/acc": acc, "train/loss": loss}, states=states or {}, steps=steps, params=params or {},
                    final_state=verdict if verdict != "inconclusive" else "healthy")


def test_cumulative_decay_by_hand() -> None:
    penalty = run_dose(run("l2_1e-3", 0, {**SGD, "reg.l2.strength": "0.001", "reg.l2.mode": "penalty"}))
    assert penalty.decay == pytest.approx(2 * 0.3 * 1e-3 * 150 / (1 - 0.9)) and penalty.comparable  # 0.9
    decoupled = run_dose(run("l2dec_1e-3", 0, {**SGD, "reg.l2.strength": "0.001", "reg.l2.mode": "decoupled"}))
    assert decoupled.decay == pytest.approx(2 * 0.3 * 1e-3 * 150)  # no 1/(1 − β): the decay bypasses momentum
    plain = run_dose(run("l2_1e-3", 0, {**SGD, "optim.momentum": "0.0", "reg.l2.strength": "0.001"}, steps=1))
    assert plain.decay == pytest.approx(2 * 0.3 * 1e-3 * 1)  # a run stopped at step 1 got one step's dose
    adam = run_dose(run("l2_1e-3", 0, {"optim._target_": "torch.optim.Adam", "optim.lr": "0.001",
                                       "reg.l2.strength": "0.001"}))
    assert adam.decay is None and not adam.comparable and "Adam" in adam.note
    assert dose_text([adam]).startswith("not comparable (η 0.001, λ 0.001, T 150, penalty")
    en = run_dose(run("en_1e-3", 0, {**SGD, "reg.elasticnet.strength": "0.001", "reg.elasticnet.l1_ratio": "0.5"}))
    assert en.strength == pytest.approx(5e-4) and en.decay == pytest.approx(0.45)
    assert run_dose(run("l1_1e-3", 0, {**SGD})) is None
    both = [penalty, run_dose(run("l2_1e-3", 1, {**SGD, "reg.l2.strength": "0.001"}, steps=20))]
    assert dose_text(both) == "0.12–0.9 (η 0.3, λ 0.001, β 0.9, T 20–150, penalty)"


def study(extra: list[StudyRun] | None = None) -> dict:
    runs = [run("none", s, SGD, verdict="stalled", step=s + 2, acc=0.1, states={"healthy": 0.0, "stalled": 1.0},
                loss=7.0e12 if s == 1 else 2.3) for s in range(3)]
    runs += [run("l2_1e-3", s, {**SGD, "reg.l2.strength": "0.001"}, acc=0.9 + 0.01 * s,
                 states={"healthy": 0.75, "stalled": 0.25}, verdict="healthy") for s in range(3)]
    runs += extra or []
    cells = build_cells(runs)
    return json.loads(json.dumps(study_record("study2", cells, pooled_rates(runs), len(runs)), default=str))


def test_time_in_states_and_cells_fixed_before_step_30() -> None:
    data = study()
    none, l2 = data["cells"]
    assert none["fixed_before_30"] is True and l2["fixed_before_30"] is False
    assert l2["time_in_states"]["mean"] == pytest.approx({"healthy": 0.75, "stalled": 0.25})
    assert l2["text"]["time"] == "healthy 75%, stalled 25%"
    assert data["fixed_early"] == {"before_step": 30, "cells": 1, "of": 2, "regularizer_cells_of_failing_conditions": 0,
                                   "of_regularizer": 1, "failing_conditions": ["lenet5_dying"],
                                   "which": ["lenet5_dying/none"]}


def test_study_numbers_name_every_number_the_prose_needs() -> None:
    data = study()
    nums = study_numbers(data)
    assert nums["lenet5_dying/l2_1e-3/decay"] == "0.9 (η 0.3, λ 0.001, β 0.9, T 150, penalty)"
    assert nums["lenet5_dying/l2_1e-3/pairing"] == "paired by seed with `none`, n=3"
    assert nums["lenet5_dying/l2_1e-3/acc_diff"].startswith("+0.81 [")
    assert nums["lenet5_dying/l2_1e-3/acc_tost"].startswith("different")
    assert nums["pooled/regularizer/rescues"] == "3 of 3 (100.0% [43.9%, 100.0%], Wilson)"
    assert nums["fixed_early/all"] == "1 of 2 cells" and nums["margin/accuracy"] == "±0.02"
    assert nums["smallest_detectable_flip"] == "3 of 3"
    c = data["cells"][1]
    assert c["vs_reference"]["test/acc"]["diffs"] == pytest.approx([0.8, 0.81, 0.82])
    assert c["equivalence"]["test/acc"]["result"] == "different" and c["doses"][0]["decay"] == pytest.approx(0.9)


def test_numbers_in_prose_finds_the_ones_the_data_lacks() -> None:
    data = study()
    nums = study_numbers(data)
    good = (f"L2 at λ = 1e-3 rescued {nums['pooled/regularizer/rescues']} of the stalled seeds; accuracy rose by "
            f"{nums['lenet5_dying/l2_1e-3/acc_diff']}. Its cumulative decay was 0.90, the loss of seed 1 reached "
            "7.0e12 (Lu et al. 2019; Hanin 2018). LeNet-5 in `lenet5_dying` at 150 steps, 75% of them healthy.")
    assert numbers_in_prose(good, data) == []
    drifted = "The loss reached 5.4e22 with L2, accuracy 0.97 and a decay of 32."
    assert numbers_in_prose(drifted, data) == [("5.4e22", 1), ("0.97", 1), ("32", 1)]
    assert numbers_in_prose("a decay of 32", data, allowed=[32]) == []
    assert numbers_in_prose("```\n0.12345\n```\nthree steps: 2·η·λ", data) == []  # code and small integers skipped
