"""Checks on a composed config that must pass before anything trains or any run is created.

Three kinds of check, all collected before anything is reported:
- every leaf value against its rule in `src/config/schema.py` (types, ranges, enums, paths);
- every `_target_` node's keys against the arguments its target accepts (typos, stray `+key=`);
- settings that only make sense together (`register_check` adds more, e.g. from the reg group).

A failure is one `ConfigError` naming each key, its bad value and what is allowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.utils import get_class, get_method
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.config.schema import problem

RESERVED_KNOBS = {"model": {"dropout"}}  # set by structural regularizers, never by the model config
CrossCheck = Callable[[DictConfig], list[str]]


class ConfigError(ValueError):
    """A setting has a value that is not allowed."""


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, resolved value) of every leaf; lists of scalars are leaves, unresolvable values skipped."""
    if isinstance(node, DictConfig):
        for key in node:
            try:
                child = node[key]
            except OmegaConfBaseException:  # e.g. ${hydra:...} outside a Hydra run
                continue
            yield from leaves(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, ListConfig) and any(isinstance(v, (DictConfig, ListConfig)) for v in node):
        for i, child in enumerate(node):
            yield from leaves(child, f"{prefix}.{i}")
    else:
        yield prefix, OmegaConf.to_container(node, resolve=True) if isinstance(node, ListConfig) else node


def check_values(cfg: DictConfig) -> list[str]:
    return [msg for key, value in leaves(cfg) if not key.startswith("hydra") and (msg := problem(key, value))]


def accepted_arguments(target: Any) -> set[str] | None:
    """Keyword arguments a callable accepts; None = anything (`**kwargs`).

    Our own classes pass `**kwargs` on to their base class, so those are followed up the bases;
    a third-party `**kwargs` may go anywhere (DDPStrategy hands it to DistributedDataParallel).
    """
    names: set[str] = set()
    classes = [c for c in inspect.getmro(target) if "__init__" in vars(c)] if inspect.isclass(target) else [target]
    for i, fn in enumerate(classes):
        if i > 0 and not classes[i - 1].__module__.startswith("src."):
            return None
        func = fn.__init__ if inspect.isclass(fn) else fn
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self"}
    return None  # **kwargs all the way up (e.g. `object`)


def target_nodes(node: Any, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield prefix, node
        for key in node:
            if not str(key).startswith("_") and not (prefix == "" and key == "hydra"):
                yield from target_nodes(node._get_node(key), f"{prefix}.{key}" if prefix else str(key))


def check_targets(cfg: DictConfig) -> list[str]:
    """Each `_target_` must import, and each key beside it must be an argument of it."""
    errors = []
    for path, node in target_nodes(cfg):
        try:
            target = get_method(node._target_)
        except Exception as err:  # noqa: BLE001 - Hydra wraps import errors in several types
            errors.append(f"{path}._target_={node._target_!r} cannot be imported ({type(err).__name__})")
            continue
        allowed = accepted_arguments(target)
        if allowed is None:
            continue
        allowed -= RESERVED_KNOBS.get(path, set())
        name = node._target_.rsplit(".", 1)[-1]
        for key in node:
            if not str(key).startswith("_") and key not in allowed:
                errors.append(f"{path}.{key} is not a setting of {name}; its settings are {sorted(allowed)}")
    return errors


def check_training_length(cfg: DictConfig) -> list[str]:
    """Training must have an end and must train at all: max_epochs >= 1 or max_steps >= 1."""
    trainer = cfg.get("trainer") or {}
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (epochs if epochs is not None else 1, steps)):
        return []  # the value rules already report the types
    if epochs is None or epochs >= 1 or steps >= 1:
        return []
    return [
        f"trainer.max_epochs={epochs} and trainer.max_steps={steps} are both unusable "
        f"({'nothing would train' if 0 in (epochs, steps) else 'training would never end'}); "
        "set trainer.max_epochs >= 1 or trainer.max_steps >= 1"
    ]


def check_split(cfg: DictConfig) -> list[str]:
    data = cfg.get("data") or {}
    val, test = data.get("val_fraction", 0), data.get("test_fraction", 0)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (val, test)) and val + test >= 1:
        return [f"data.val_fraction={val} + data.test_fraction={test} is not allowed; the sum must be < 1"]
    return []


def check_resume(cfg: DictConfig) -> list[str]:
    resume, ckpt = cfg.get("resume"), cfg.get("ckpt_path")
    if resume and ckpt:
        return [f"resume={resume!r} and ckpt_path={ckpt!r} are both set; give one (resume finds the checkpoint)"]
    if isinstance(ckpt, str) and ckpt and not Path(ckpt).is_file():
        return [f"ckpt_path={ckpt!r} is not allowed; it must be an existing checkpoint file"]
    return []


def check_ddp_launch(cfg: DictConfig) -> list[str]:
    """Lightning's `ddp` re-runs `sys.argv` for the other ranks; inside a Hydra multirun that re-runs the sweep."""
    from src.lifecycle.ranks import relaunches_argv

    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        multirun = False
    if multirun and relaunches_argv(cfg.get("trainer") or {}):
        return [
            "trainer.strategy=ddp re-launches the command line for each extra process, which inside a Hydra "
            "multirun (-m) would start the whole sweep again; run multi-process jobs one at a time (no -m)"
        ]
    return []


def as_cross_check(check: Callable[[DictConfig], None]) -> CrossCheck:
    """A group's own raising check (`check_reg`, `check_monitor`) as a cross check returning messages."""

    def cross_check(cfg: DictConfig) -> list[str]:
        try:
            check(cfg)
        except ConfigError as err:
            return [str(err)]
        return []

    return cross_check


CROSS_CHECKS: list[CrossCheck] = [
    check_training_length, check_split, check_resume, check_ddp_launch,
    as_cross_check(lambda cfg: check_reg(cfg)), as_cross_check(lambda cfg: check_monitor(cfg)),
]


def register_check(check: CrossCheck) -> None:
    """Add a check that returns a list of messages (empty when the config is fine)."""
    CROSS_CHECKS.append(check)


def check_reg(cfg: DictConfig) -> None:
    """Every selected regularizer: known settings with allowed values; no second, hidden weight decay.

    `optim.weight_decay` must stay 0 when a weight regularizer (l1, l2, elasticnet) is selected:
    torch's optimizers would decay every parameter (biases and norm layers too) on top of the
    selected penalty, and the run would not measure what its `reg` tag says.
    """
    from src.training.regularizers import Regularizer

    for name, node in (cfg.get("reg") or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"reg.{name} is not a regularizer config; choose options of the reg group (reg=[l1,l2])")
        try:
            cls = get_class(node._target_)
        except Exception as exc:  # noqa: BLE001 - hydra wraps import errors in several types
            raise ConfigError(f"reg.{name}._target_={node._target_!r} cannot be imported: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            raise ConfigError(f"reg.{name}._target_={node._target_!r} is not a src.training.regularizers.Regularizer")
        allowed = set(inspect.signature(cls).parameters)
        for key in node:
            if key.startswith("_"):
                continue
            if key not in allowed:
                raise ConfigError(
                    f"reg.{name}.{key} is not a setting of {cls.__name__}; its settings are {sorted(allowed)}"
                )
        decay = (cfg.get("optim") or {}).get("weight_decay", 0) or 0
        if cls.penalizes_weights and decay != 0:
            raise ConfigError(
                f"optim.weight_decay={decay!r} is not allowed together with reg.{name}; it must be 0 "
                "(use reg=l2 reg.l2.mode=decoupled for decoupled weight decay, or reg.l2.mode=penalty for L2)"
            )


def check_monitor(cfg: DictConfig) -> None:
    """The gradient-health monitor's keys (its values have rules in src/config/schema.py, checked first)."""
    node = cfg.get("monitor")
    if not node or "_target_" not in node:
        return  # monitor=off
    from src.monitor.events import Thresholds

    allowed = set(inspect.signature(get_method(node._target_)).parameters) - {"thresholds"}
    allowed |= set(Thresholds.__dataclass_fields__)
    for key in node:
        if not key.startswith("_") and key not in allowed:
            raise ConfigError(f"monitor.{key} is not a monitor setting; its settings are {sorted(allowed)}")


def validate(cfg: DictConfig) -> None:
    """Raise one ConfigError listing every problem of `cfg`; return silently when there is none."""
    errors = check_values(cfg)
    bad_keys = {e.split("=", 1)[0] for e in errors}
    errors += [e for e in check_targets(cfg) if e.split(" ", 1)[0] not in bad_keys]
    if not errors:  # cross checks assume the single values are sane
        for check in CROSS_CHECKS:
            errors += check(cfg)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
