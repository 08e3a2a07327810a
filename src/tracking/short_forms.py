"""Short forms of config overrides, the parts of a run name: `model.batch_norm=true` -> `bn1`,
`optim.lr=0.05` -> `lr0.05`, `model.init=kaiming` -> `init=kaiming`, `data=digits` -> `digits`.

A part is the key's abbreviation followed by the value: numbers and booleans directly (`bn1`,
`lr0.05`, `lam1e-4`), words after `=` (`act=tanh`). Well-known keys have a short abbreviation in
`ABBREVIATIONS`; any other key falls back to its last segment (`callbacks.poison.step=3` -> `step3`).
Numbers keep at most 4 significant digits, scientific below 0.01 (`1e-4`, not `0.0001`); the full
override stays in the run's `overrides` tag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fnmatch import fnmatchcase

# Keys the head `<model>-<reg>-<optim>-s<seed>` already shows. The study groups (conf/study/) pair a
# model width or a regularizer with its optimizer: their choice shows in the head's model/reg/optim.
SHOWN_IN_HEAD = ("model", "reg", "optim", "seed", "study/model", "study/arm")

# key (or fnmatch pattern) -> abbreviation; "" = the value alone (a data set's name says what it is).
# The order is the order of the parts in a name; keys not listed come after, sorted by key.
ABBREVIATIONS: dict[str, str] = {
    "experiment": "",
    "data": "",
    "data.batch_size": "bs",
    "data.num_samples": "n",
    "data.noise": "noise",
    "data.image_size": "px",
    "data.in_channels": "ch",
    "data.val_fraction": "val",
    "data.test_fraction": "test",
    "model.batch_norm": "bn",
    "model.norm": "norm",
    "model.residual": "res",
    "model.init": "init",
    "model.init_std": "std",
    "model.activation": "act",
    "model.depth": "depth",
    "model.width": "w",
    "model.pool": "pool",
    "model.small_input": "small",
    "reg_strength": "lam",  # λ shared by every weight regularizer (conf/train.yaml)
    "reg.*.strength": "lam",  # λ; prefixed with the regularizer's name when several are composed
    "reg.*.l1_ratio": "r",
    "reg.*.p": "p",
    "reg.*.proximal": "prox",
    "reg.*.mode": "mode",
    "optim.lr": "lr",
    "optim.momentum": "mom",
    "optim.weight_decay": "wd",
    "optim.betas": "betas",
    "optim.eps": "eps",
    "optim.nesterov": "nesterov",
    "sched": "sched",
    "sched.T_max": "tmax",
    "sched.step_size": "every",
    "sched.gamma": "gamma",
    "sched.eta_min": "lrmin",
    "trainer": "",
    "trainer.max_epochs": "ep",
    "trainer.max_steps": "steps",
    "trainer.limit_train_batches": "trainb",
    "trainer.limit_val_batches": "valb",
    "trainer.limit_test_batches": "testb",
    "trainer.gradient_clip_val": "clip",
    "trainer.precision": "prec",
    "trainer.accumulate_grad_batches": "accum",
    "monitor": "monitor",
    "seed": "s",
}

# Overrides that change where a run writes or how it reports, not what it computes: left out of a
# single run's name (in a sweep every varying key is named, so that names stay unique).
BOOKKEEPING = (
    "paths.*", "logger.*", "hydra.*", "resume", "ckpt_path", "test", "optimized_metric",
    "data.data_dir", "data.num_workers", "data.download", "data.download_timeout", "data.eval_batch_size",
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.default_root_dir",
    "trainer.log_every_n_steps", "callbacks.*.dirpath", "monitor.plots",
)

MAX_WORD = 16  # characters of a word value kept in a name (longer: its last dotted segment, cut)
UNSAFE = re.compile(r"[\s/\\]+")


def matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(key, pattern) for pattern in patterns)


def abbreviation(key: str, regs: Sequence[str] = ()) -> str:
    """The key's short form; a regularizer knob carries the regularizer's name when `regs` has several."""
    abbr = next((a for pattern, a in ABBREVIATIONS.items() if fnmatchcase(key, pattern)), None)
    if abbr is None:
        abbr = key.replace("/", ".").rsplit(".", 1)[-1].strip("_") or key
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "reg" and len(regs) > 1:
        return f"{parts[1]}{abbr}"
    return abbr


def order(key: str) -> tuple[int, str]:
    """Where a key's part goes in a name: table order first, then the other keys by name, the seed last."""
    if key == "seed":
        return (len(ABBREVIATIONS) + 1, key)
    rank = next((i for i, pattern in enumerate(ABBREVIATIONS) if fnmatchcase(key, pattern)), len(ABBREVIATIONS))
    return (rank, key)


def short_number(value: float) -> str:
    """`value` at <= 4 significant digits (fewer when they say it exactly): plain from 0.01 to 99999
    (0.05, 0.01235, 1500), scientific outside (1e-4, 2.5e-5, 1e5)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = next((d for d in range(1, 4) if float(f"{value:.{d}g}") == value), 4)
    rounded = float(f"{value:.{digits}g}")
    exponent = math.floor(math.log10(abs(rounded)))
    mantissa = f"{rounded / 10**exponent:.{digits - 1}f}"
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    scientific = f"{mantissa}e{exponent}"
    if exponent < -2 or exponent > 4:  # 0.001 -> 1e-3, 1.5e-4, 2e5: one notation for small and large values
        return scientific
    plain = f"{rounded:.{max(0, digits - 1 - exponent)}f}"
    return plain.rstrip("0").rstrip(".") if "." in plain else plain


def short_value(text: str) -> tuple[str, bool]:
    """(short form, is it a word) of an override's value as Hydra passes it (`True`, `0.0500`, `kaiming`)."""
    raw = text.strip().strip("'\"")
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return ("1" if lowered == "true" else "0"), False
    if lowered in ("null", "none", "~"):
        return "null", True
    if raw.startswith("[") and raw.endswith("]"):
        items = [short_value(item)[0] for item in raw[1:-1].split(",") if item.strip()]
        return ",".join(items) or "[]", True
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if re.fullmatch(r"[+-]?\d+", raw):
            return str(int(raw)), False
        return short_number(number), False
    word = UNSAFE.sub("_", raw)
    if len(word) > MAX_WORD:
        word = re.split(r"[.:]", word)[-1][:MAX_WORD]
    return word, True


def part(key: str, value: str, regs: Sequence[str] = ()) -> str:
    """One name part: `bn1`, `lr0.05`, `init=kaiming`, `digits`."""
    abbr = abbreviation(key, regs)
    text, is_word = short_value(value)
    if not abbr:
        return text
    return f"{abbr}={text}" if is_word else f"{abbr}{text}"
