"""Run names: short, stable, unique within a sweep, from the config group choices and the overrides.

- Head: `<model>-<reg>-<optim>`, or `logger.run_name` when a config sets one (the demos do).
- Parts: in a single run, its command-line overrides except bookkeeping ones (paths, logging,
  progress bar); in a sweep job, the overrides whose key varies within the sweep (recorded by the
  sweep callback from the multirun's overrides and the sweeper's params). Short forms and their
  order: `src/tracking/short_forms.py`.
- Dose: a study arm (`+study/arm=l2_1e-3`) sets a regularizer's λ or dropout's p inside its file; its
  name shows that dose as the override would (`lam1e-3`, `p0.3`), so two doses never share a name.
- Tail: `s<seed>`, always with the choices head.

`vgg19-none-sgd-bn1-init=kaiming-s0`, `lenet5-l2-sgd-lam1e-3-lr0.05-s1`, `vanishing_demo-s3`.
A `logger.run_name=...` given on the command line of a single run is used as it is. The full
override string is the run's `overrides` tag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig

from src.tracking.short_forms import BOOKKEEPING, SHOWN_IN_HEAD, matches, order, part

RUN_NAME_KEY = "logger.run_name"
DOSE_KEYS = ("strength", "p")  # a regularizer's dose: λ of l1/l2/elasticnet, p of dropout
DOSE_SETTERS = ("study/arm",)  # groups whose options set a dose that no override shows


def reg_label(cfg: DictConfig) -> str:
    """The composed regularizer choice: `l2+dropout`, or `none`."""
    reg = cfg.get("reg") or {}
    return "+".join(reg.keys()) if reg else "none"


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, str]]:
    """(key, value as typed) of each override; group overrides by group (`+study/arm=x` -> `study/arm`).

    Deletions (`~key`) name nothing. Hydra's parser finds the key; the value is the text after the
    first `=` (`True`, `0.05`, `[l2,dropout]`); an override it cannot parse (a redacted secret, say)
    is split at that `=` as it is.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser, parsed = OverridesParser.create(), []
    for line in overrides:
        key, _, value = line.partition("=")
        try:
            override = parser.parse_override(line)
        except HydraException:
            if value and not key.startswith("~"):
                parsed.append((key.lstrip("+"), value))
            continue
        if not (override.is_delete() or override.is_sweep_override()):
            parsed.append((override.key_or_group, value))
    return parsed


def named_overrides(
    overrides: Sequence[tuple[str, str]], multirun: bool, varying_keys: Sequence[str] | None
) -> list[tuple[str, str]]:
    """The overrides a name shows: the varying ones in a sweep (all of a job's overrides when the sweep
    did not record which vary), the non-bookkeeping ones in a single run."""
    if multirun:
        return [(k, v) for k, v in overrides if varying_keys is None or k in varying_keys]
    return [(k, v) for k, v in overrides if not matches(k, BOOKKEEPING)]


def run_name(
    cfg: DictConfig, choices: Mapping[str, Any], overrides: Sequence[str] = (), sweep: Mapping[str, Any] | None = None
) -> str:
    """The run's name (see the module docstring). `sweep` is the job's sweep context ({} for a single run)."""
    sweep = sweep or {}
    multirun = "job_num" in sweep
    parsed = [(k, v) for k, v in parse_overrides(overrides) if k != RUN_NAME_KEY]
    given = cfg.logger.get("run_name")
    if given and not multirun and any(o.lstrip("+").startswith(f"{RUN_NAME_KEY}=") for o in overrides):
        return str(given)  # named by the user on the command line
    regs = list((cfg.get("reg") or {}).keys())
    shown = named_overrides(parsed, multirun, sweep.get("varying_keys"))
    if given:
        head, tail, skip = str(given), [], ()
    else:
        head = f"{choices.get('model', 'model')}-{reg_label(cfg)}-{choices.get('optim', 'optim')}"
        tail, skip = [f"s{cfg.seed}"], SHOWN_IN_HEAD
    parts = [part(k, v, regs) for k, v in sorted(shown, key=lambda kv: order(kv[0])) if k not in skip]
    if any(k in DOSE_SETTERS for k, _ in shown):
        parts += dose_parts(cfg, regs)
    return "-".join(dict.fromkeys([head, *parts, *tail]))  # a part equal to another is shown once


def dose_parts(cfg: DictConfig, regs: list[str]) -> list[str]:
    """The composed dose of each selected regularizer as name parts (`lam1e-3`, `p0.5`), in config order."""
    parts = []
    for name in regs:
        node = cfg.reg[name]
        parts += [part(f"reg.{name}.{key}", str(node[key]), regs) for key in DOSE_KEYS if key in node]
    return parts


def deduplicate_in_sweep(mlflow_client: Any, run: Any, sweep: Mapping[str, Any]) -> str:
    """The run's name, made unique within its sweep: `<name>-j<job number>` when another run of the same
    sweep already has it (short forms round numbers to 4 digits; a study arm may repeat a head).

    Called after the run exists: of two jobs that collide, the later one to search sees the other, so at
    least one of them is renamed, and job numbers differ.
    """
    from src.tracking.client import search_all_runs

    name = run.info.run_name
    if "job_num" not in sweep or not sweep.get("sweep_id"):
        return name
    siblings = search_all_runs(mlflow_client, f"tags.sweep_id = '{sweep['sweep_id']}'", [run.info.experiment_id])
    if not any(r.info.run_name == name and r.info.run_id != run.info.run_id for r in siblings):
        return name
    unique = f"{name}-j{sweep['job_num']}"
    mlflow_client.set_tag(run.info.run_id, "mlflow.runName", unique)
    return unique
