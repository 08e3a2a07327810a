"""The L2 dose a run actually received: its cumulative decay, from the run's own params and steps.

Per step, L2 shrinks a weight by a factor (1 − 2ηλ) (gradient 2λθ of λΣθ²); over T steps the weights have
been decayed by about exp(−2ηλT), so D = 2ηλT measures how much L2 has done (below ~0.3 almost nothing;
≈ 32 in the usual CIFAR recipe: λ 5e-4, η 0.1, 64k steps, β 0.9). With SGD's heavy-ball momentum β the
penalty's gradient is accumulated, so its decay is 2ηλT/(1 − β). Cases:

- `reg.l2.mode=penalty` with SGD: D = 2·η·λ·T/(1 − β) (β = `optim.momentum`, 0 for plain SGD);
- `reg.l2.mode=decoupled` (any optimizer): θ ← (1 − 2ηλ)θ outside the optimizer, so D = 2·η·λ·T, no
  momentum factor;
- penalty with Adam/AdamW: the 2λθ term is divided by Adam's adaptive denominator; no dose comparable to
  SGD's follows from η, λ and T. The inputs are printed, D is not (marked "not comparable");
- Elastic Net: its L2 part λ(1 − r) (r = `l1_ratio`) enters the same formulas (proximal: as decoupled);
- a learning-rate schedule: D uses the base η, an upper bound (marked).

T is the steps the run actually trained (`StudyRun.steps`), not the planned `trainer.max_steps`: a run
stopped at step 1 got a dose of one step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from src.report.study_read import StudyRun


@dataclass(frozen=True)
class Dose:
    """One run's L2 dose and what it is made of."""

    decay: float | None  # 2ηλT/(1 − β) or 2ηλT; None when not comparable or an input is missing
    lr: float | None
    strength: float  # λ of the L2 term (Elastic Net: λ(1 − r))
    momentum: float
    steps: int | None
    mode: str  # "penalty" | "decoupled"
    optimizer: str  # "SGD", "Adam", ...
    comparable: bool
    note: str  # why not comparable, or what the number is (an upper bound under a schedule)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def inputs(self) -> str:
        """`η 0.3, λ 1e-3, β 0.9, T 150, penalty`: the formula's inputs."""
        beta = f", β {self.momentum:g}" if self.optimizer == "SGD" and self.mode == "penalty" else ""
        return (f"η {self.lr:g}" if self.lr is not None else "η ?") + f", λ {self.strength:g}{beta}, T " + \
            (str(self.steps) if self.steps is not None else "?") + f", {self.mode}"


def _float(params: dict[str, str], key: str, default: float | None = None) -> float | None:
    try:
        return float(params[key])
    except (KeyError, ValueError):
        return default


def l2_term(params: dict[str, str]) -> tuple[float, str] | None:
    """(λ of the L2 term, mode) of a run, or None when it has no L2 term (λ 0 counts as none)."""
    if (strength := _float(params, "reg.l2.strength")) is not None and strength > 0:
        return strength, params.get("reg.l2.mode", "penalty")
    strength, ratio = _float(params, "reg.elasticnet.strength"), _float(params, "reg.elasticnet.l1_ratio", 0.5)
    if strength is not None and strength > 0 and ratio < 1:
        proximal = params.get("reg.elasticnet.proximal", "False").lower() == "true"
        return strength * (1 - ratio), "decoupled" if proximal else "penalty"
    return None


def run_dose(run: StudyRun) -> Dose | None:
    """The run's cumulative L2 decay; None when the run has no L2 term."""
    term = l2_term(run.params)
    if term is None:
        return None
    strength, mode = term
    target = run.params.get("optim._target_", "")
    optimizer = target.rsplit(".", 1)[-1] or "?"
    lr, steps = _float(run.params, "optim.lr"), run.steps
    momentum = _float(run.params, "optim.momentum", 0.0) if optimizer == "SGD" else 0.0
    if optimizer not in ("SGD",) and mode == "penalty":
        return Dose(None, lr, strength, momentum, steps, mode, optimizer, False,
                    f"not comparable: {optimizer} divides the penalty's gradient by its adaptive denominator")
    if lr is None or steps is None:
        return Dose(None, lr, strength, momentum, steps, mode, optimizer, False, "an input was not logged")
    factor = 1.0 if mode == "decoupled" else 1.0 / (1.0 - momentum)
    note = "2ηλT (decoupled: no momentum factor)" if mode == "decoupled" else "2ηλT/(1−β)"
    if run.params.get("sched._target_"):
        note += "; η scheduled: base η used, an upper bound"
    return Dose(2 * lr * strength * steps * factor, lr, strength, momentum, steps, mode, optimizer, True, note)


def cell_doses(runs: list[StudyRun]) -> list[Dose]:
    """The doses of a cell's runs that have an L2 term, in seed order."""
    return [d for r in sorted(runs, key=lambda r: r.seed) if (d := run_dose(r)) is not None]


def dose_text(doses: list[Dose]) -> str:
    """`0.15 (η 0.3, λ 1e-3, β 0.9, T 150, penalty)`; a range over seeds when T differs; "—" without L2."""
    if not doses:
        return "—"
    if not any(d.comparable for d in doses):
        return f"not comparable ({doses[0].inputs()}; {doses[0].optimizer})"
    values = sorted(d.decay for d in doses if d.decay is not None)
    steps = sorted(d.steps for d in doses if d.steps is not None)
    first = doses[0]
    if values[0] == values[-1]:
        return f"{values[0]:.3g} ({first.inputs()})"
    inputs = first.inputs().replace(f"T {first.steps}", f"T {steps[0]}–{steps[-1]}")
    return f"{values[0]:.3g}–{values[-1]:.3g} ({inputs})"
