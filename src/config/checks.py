"""The checks across keys: settings that are each allowed but not together. They run once every
single value is allowed (`src/config/validation.py`); each returns its problems, one line each.
`WARNINGS` are checks of the same kind whose lines are logged at start instead of refusing the run."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from hydra.utils import get_object
from omegaconf import DictConfig


def training_has_an_end(cfg: DictConfig) -> list[str]:
    """max_epochs >= 1 or max_steps >= 1: training must end, and must train at all."""
    trainer = cfg.get("trainer") or {}
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if epochs is None or epochs >= 1 or steps >= 1:
        return []
    why = "nothing would train" if 0 in (epochs, steps) else "training would never end"
    return [f"trainer.max_epochs={epochs} and trainer.max_steps={steps} are both unusable ({why}); "
            "set trainer.max_epochs >= 1 or trainer.max_steps >= 1"]


def split_leaves_training_data(cfg: DictConfig) -> list[str]:
    data = cfg.get("data") or {}
    val, test = data.get("val_fraction", 0), data.get("test_fraction", 0)
    if val + test < 1:
        return []
    return [f"data.val_fraction={val} + data.test_fraction={test} is not allowed; the sum must be < 1"]


def one_way_to_resume(cfg: DictConfig) -> list[str]:
    resume, ckpt = cfg.get("resume"), cfg.get("ckpt_path")
    if resume and ckpt:
        return [f"resume={resume!r} and ckpt_path={ckpt!r} are both set; give one (resume finds the checkpoint)"]
    if ckpt and not Path(ckpt).is_file():
        return [f"ckpt_path={ckpt!r} is not allowed; it must be an existing checkpoint file"]
    return []


def skipping_needs_a_run(cfg: DictConfig) -> list[str]:
    """`skip_bad_batches` goes on past what a run's forensics report named: it needs that run."""
    if cfg.get("skip_bad_batches") and not cfg.get("resume"):
        return ["skip_bad_batches=true needs resume=<run_id> (the run whose forensics/report.json names the "
                "examples to leave out)"]
    return []


def no_relaunching_ddp_in_a_multirun(cfg: DictConfig) -> list[str]:
    """Lightning's `ddp` re-runs `sys.argv` for the other ranks; inside a Hydra multirun that re-runs the sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from src.lifecycle.ranks import relaunches_argv

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if not (multirun and relaunches_argv(cfg.get("trainer") or {})):
        return []
    return ["trainer.strategy=ddp re-launches the command line for each extra process, which inside a Hydra "
            "multirun (-m) would start the whole sweep again; run multi-process jobs one at a time (no -m)"]


def no_weight_decay_beside_a_weight_regularizer(cfg: DictConfig) -> list[str]:
    """`optim.weight_decay` must stay 0 when a weight regularizer (l1, l2, elasticnet) is selected: torch's
    optimizers would decay every parameter (biases and norm layers too) on top of the selected penalty, and
    the run would not measure what its `reg` tag says."""
    from src.training.regularizers import Regularizer

    problems = []
    decay = (cfg.get("optim") or {}).get("weight_decay", 0) or 0
    for name, node in (cfg.get("reg") or {}).items():
        cls = get_object(node._target_)
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            problems.append(f"reg.{name}._target_={node._target_!r} is not a {Regularizer.__module__}.Regularizer")
        elif cls.penalizes_weights and decay != 0:
            problems.append(
                f"optim.weight_decay={decay!r} is not allowed together with reg.{name}; it must be 0 "
                "(use reg=l2 reg.l2.mode=decoupled for decoupled weight decay, or reg.l2.mode=penalty for L2)"
            )
    return problems


def the_model_takes_what_a_regularizer_sets(cfg: DictConfig) -> list[str]:
    """A structural regularizer (dropout) hands the model builder keyword arguments (`network_kwargs()`);
    a builder whose signature has no such argument (and no `**kwargs`) would fail inside Hydra with a
    bare TypeError after the data was loaded. Asked of the builder's own signature, here, before anything."""
    from hydra.utils import instantiate

    from src.settings.signature import signature_schema

    model = cfg.get("model") or {}
    if "_target_" not in model:
        return []
    builder = get_object(model._target_)
    accepted = signature_schema(builder).accepted
    if accepted is None:  # **kwargs that go on to code we cannot read: the builder decides
        return []
    lines = []
    for name, node in (cfg.get("reg") or {}).items():
        keys = sorted(set(instantiate(node).network_kwargs()) - set(accepted))
        if keys:
            lines.append(
                f"reg.{name} is not allowed with model._target_={model._target_!r}: reg.{name} sets the model's "
                f"{', '.join(keys)} argument and {builder.__qualname__} takes none; choose a model whose builder has "
                f"it (lenet5, vgg19, resnet152, mlp) or add it to the builder (docs/extending.md, \"A model\")")
    return lines


def a_diverged_run_can_stop(cfg: DictConfig) -> list[str]:
    """Lightning ignores `trainer.should_stop` until min_epochs/min_steps are done, so with either above 0
    the monitor's `stop` could not end a run gone NaN or diverged."""
    monitor, trainer = cfg.get("monitor") or {}, cfg.get("trainer") or {}
    if "_target_" not in monitor:
        return []
    target = get_object(monitor._target_)
    defaults = {k: p.default for k, p in inspect.signature(target).parameters.items()}
    defaults |= getattr(target, "POLICY_DEFAULTS", {})  # `on_<kind>` generated from the detector registry
    stopping = [f"monitor.{k}=stop" for k, default in defaults.items()
                if k.startswith("on_") and monitor.get(k, default) == "stop"]
    minimums = [f"trainer.{k}={trainer[k]}" for k in ("min_epochs", "min_steps") if (trainer.get(k) or 0) > 0]
    if not (stopping and minimums):
        return []
    return [f"{' and '.join(minimums)} is not allowed together with {' and '.join(stopping)}: Lightning trains on "
            "until the minimum is reached, so a run gone NaN or diverged could not stop; set the minimum to 0 "
            "or the policy to continue"]


def resnet_knobs_agree(cfg: DictConfig) -> list[str]:
    """ResNet-152's `zero_init_residual` needs its shortcuts (`residual`): the model's own rule, asked here."""
    from src.models.resnet import knob_conflicts, resnet152

    model = cfg.get("model") or {}
    if "_target_" not in model or get_object(model._target_) is not resnet152:
        return []
    defaults = inspect.signature(resnet152).parameters
    knobs = {k: model.get(k, defaults[k].default) for k in ("residual", "zero_init_residual")}
    return knob_conflicts(**knobs)


def an_l2_step_keeps_the_weights_sign(cfg: DictConfig) -> list[str]:
    """A warning, not an error (a study may want it): where the L2 term acts on the weights through the
    factor (1 − 2ηλ) per step, 2ηλ ≥ 1 makes it ≤ 0, so each step flips the sign of every penalized weight
    and, below −1, grows it: the only way the penalty itself can make a run diverge.

    The factor exists with SGD for `l2` in penalty mode (θ ← (1 − 2ηλ)θ − η∇L) and for a gradient-form
    `elasticnet` (λ(1 − r) in place of λ); with any optimizer for `l2` in decoupled mode (θ ← (1 − 2ηλ)θ
    before the update). η is `optim.lr`, the run's largest rate (the cosine and step schedules only lower
    it). With heavy-ball momentum β the penalty-mode weights oscillate and diverge past 2ηλ > 2(1 + β),
    momentum's stability bound on a quadratic of curvature 2λ. Adam has no such line: it divides the
    gradient 2λθ by the root of its running second moment, so a weight moves by about η per step whatever
    λ is; the penalty pulls it toward 0 at most that fast and leaves it within about η of 0, with no factor
    that could turn negative. Proximal Elastic Net divides by 1 + 2ηλ(1 − r) ≥ 1 and cannot flip either.
    """
    from torch.optim import SGD

    from src.training.regularizers import L2, ElasticNet

    optim = cfg.get("optim") or {}
    if "_target_" not in optim:
        return []
    optimizer = get_object(optim._target_)
    lr = float(optim.get("lr", inspect.signature(optimizer).parameters["lr"].default))
    sgd = isinstance(optimizer, type) and issubclass(optimizer, SGD)
    momentum = float(optim.get("momentum", 0) or 0) if sgd else 0.0
    lines = []
    for name, node in (cfg.get("reg") or {}).items():
        cls = get_object(node._target_)
        defaults = inspect.signature(cls).parameters
        knob = {key: node.get(key, defaults[key].default) for key in ("strength", "mode", "l1_ratio", "proximal")
                if key in defaults}
        if isinstance(cls, type) and issubclass(cls, L2) and (sgd or knob["mode"] == "decoupled"):
            product, what = 2 * lr * knob["strength"], f"reg.{name}.strength={knob['strength']:g}"
            formula = "2·lr·strength"
            through_momentum = knob["mode"] == "penalty" and momentum > 0
        elif isinstance(cls, type) and issubclass(cls, ElasticNet) and sgd and not knob["proximal"]:
            product = 2 * lr * knob["strength"] * (1 - knob["l1_ratio"])
            what = f"reg.{name}.strength={knob['strength']:g} and reg.{name}.l1_ratio={knob['l1_ratio']:g}"
            formula, through_momentum = "2·lr·strength·(1 − l1_ratio)", momentum > 0
        else:
            continue
        if product < 1:
            continue
        momentum_note = (f" (with momentum {momentum:g} they oscillate instead, and diverge once it passes "
                         f"2(1 + momentum) = {2 * (1 + momentum):g})") if through_momentum else ""
        lines.append(
            f"{what} with optim.lr={lr:g} ({optimizer.__name__}): {formula} = {product:g} ≥ 1, so the penalty's "
            f"factor on the weights per step is 1 − {product:g} = {1 - product:g} ≤ 0: it flips their sign every "
            f"step, and below −1 grows them until the run diverges{momentum_note}. Training goes on as asked; "
            "lower the strength or optim.lr unless this is the experiment"
        )
    return lines


CHECKS: list[Callable[[DictConfig], list[str]]] = [
    training_has_an_end, split_leaves_training_data, one_way_to_resume, skipping_needs_a_run,
    no_relaunching_ddp_in_a_multirun,
    no_weight_decay_beside_a_weight_regularizer, the_model_takes_what_a_regularizer_sets, a_diverged_run_can_stop,
    resnet_knobs_agree,
]


def cross_key_problems(cfg: DictConfig) -> list[str]:
    return [problem for check in CHECKS for problem in check(cfg)]


WARNINGS: list[Callable[[DictConfig], list[str]]] = [an_l2_step_keeps_the_weights_sign]  # allowed, but said


def cross_key_warnings(cfg: DictConfig) -> list[str]:
    """Settings that are allowed together but probably not meant: logged at start, the run goes on."""
    return [line for check in WARNINGS for line in check(cfg)]
