"""What a study run is, by name: its condition and arm from the job's overrides, the arm's family and dose,
and the arm it is compared with (its reference).

Blocks: `experiment=study_<condition>` (first edition, MLflow experiment `study`) or
`experiment=study2_<condition>` (second edition, experiment `study2`); the condition is the block's name
without that prefix. Arms: `+study/arm=<arm>` (conf/study/arm/):

- `none`: the condition as it is, the reference of every other arm;
- a regularizer at a dose: `l1_1e-4`, `l2_1.5e-4`, `l2dec_1e-3` (decoupled L2), `en_1e-3`, `l2_3e-3_bias`
  (biases penalized too), `dropout_p05` (p = 0.5; `dropout_<where>_p05` for a placement, `dropout_trunk_p01`);
  `l1_adam`-style names are regularizers without a dose;
- a remedy or rescue by name (`clip`, `rescue_clip`, `init_he`, ...): compared with `none`;
- `<rescue>+<regularizer arm>` (`rescue_clip+l2_1e-3`): that regularizer on top of the rescue, compared
  with the rescue alone (`rescue_clip`), so that the regularizer's effect is not the rescue's.
"""

from __future__ import annotations

import re

NONE = "none"
BLOCK = re.compile(r"^study2?_(.+)$")
DOSE = re.compile(r"^(l1|l2|l2dec|en)_(\d+(?:\.\d+)?e-?\d+)(?:_bias)?$")  # `_bias`: biases penalized too
DROPOUT = re.compile(r"^dropout(?:_[a-z]+)?_p(\d)(\d+)$")
UNDOSED = re.compile(r"^(l1|l2dec|l2|en|dropout)(?:_|$)")
FAMILIES = {"l1": "L1", "l2": "L2 (penalty)", "l2dec": "L2 (decoupled)", "en": "Elastic Net", "dropout": "Dropout"}


def study_labels(overrides: list[str]) -> tuple[str, str] | None:
    """(condition, arm) from a job's overrides, None when it is not a study run."""
    found = dict(o.lstrip("+").split("=", 1) for o in overrides if "=" in o)
    block, arm = BLOCK.match(found.get("experiment", "")), found.get("study/arm")
    if block is None or arm is None:
        return None
    return block.group(1), arm


def split_arm(arm: str) -> tuple[str | None, str]:
    """(rescue, arm on top of it): `rescue_clip+l2_1e-3` -> ("rescue_clip", "l2_1e-3"); `l2_1e-3` -> (None, ...)."""
    rescue, plus, own = arm.partition("+")
    return (rescue, own) if plus else (None, arm)


def reference_arm(arm: str) -> str | None:
    """The arm this one is compared with: the rescue alone for `<rescue>+<arm>`, `none` for every other arm,
    None for `none` itself."""
    if arm == NONE:
        return None
    rescue, _ = split_arm(arm)
    return rescue or NONE


def arm_family(arm: str) -> tuple[str, float | None]:
    """(family, dose) of the arm's own part: ("l1", 1e-4), ("dropout", 0.3), ("none", 0.0), ("l1", None) for
    `l1_adam`, or ("remedy", None)."""
    own = split_arm(arm)[1]
    if own == NONE:
        return NONE, 0.0
    if m := DOSE.match(own):
        return m.group(1), float(m.group(2))
    if m := DROPOUT.match(own):
        return "dropout", float(f"{m.group(1)}.{m.group(2)}")
    if m := UNDOSED.match(own):
        return m.group(1), None
    return "remedy", None


def is_regularizer(arm: str) -> bool:
    """A regularizer arm (with or without a rescue under it), as opposed to `none` or a remedy."""
    return arm_family(arm)[0] in FAMILIES


def arm_order(arm: str) -> tuple[str, int, str, float, str]:
    """Plain arms first, then each rescue's; within them none, the regularizers by family and dose, the
    remedies by name (ties, `l2_3e-3` and `l2_3e-3_bias`, by name)."""
    rescue, own = split_arm(arm)
    family, dose = arm_family(arm)
    rank = [NONE, *FAMILIES, "remedy"].index(family)
    return rescue or "", rank, own if family == "remedy" or dose is None else "", dose or 0.0, own
