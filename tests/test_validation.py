"""Bad input fails in the first seconds, through the real entry point, with a message naming the key,
the value and what is allowed, and leaves the MLflow store without a run.

Besides the named cases, one case per key of every option of every config group is generated from
the schema itself, and a coverage test makes sure no key of any group is left without a rule.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

import src  # noqa: F401 - registers the config resolvers
from src.config.schema import AnyOf, Bool, Choice, Int, Pair, Predicate, Real, Rule, Text, WritableDir, rule_for
from src.config.validation import ConfigError, leaves, validate
from src.paths import CONFIG_DIR
from tests.mlflow_reads import all_runs

UNDER_A_FILE = str(Path(__file__).resolve() / "sub")  # a "directory" inside a regular file: never writable
SKIPPED_GROUPS = {"hydra", "experiment"}  # Hydra's own settings; experiments only select other groups


def group_options() -> list[tuple[str, str]]:
    return sorted(
        (folder.name, f.stem)
        for folder in CONFIG_DIR.iterdir()
        if folder.is_dir() and folder.name not in SKIPPED_GROUPS
        for f in folder.glob("*.yaml")
    )


def compose_all() -> dict[str, DictConfig]:
    """The root config with each option of each group selected once: `group=option` -> config."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return {f"{g}={o}": compose(config_name="train", overrides=[f"{g}={o}"]) for g, o in group_options()}


def composed_keys() -> dict[str, tuple[str, object]]:
    """Every leaf key of every group option -> (the `group=option` that has it, its default value)."""
    keys: dict[str, tuple[str, object]] = {}
    for selection, cfg in CONFIGS.items():
        for key, value in leaves(cfg):
            keys.setdefault(key, (selection, value))
    return keys


CONFIGS = compose_all()
KEYS = composed_keys()
META_KEYS = {k for k in KEYS if k.rsplit(".", 1)[-1] in ("_target_", "_partial_")}


def bad_value(rule: Rule) -> str:
    """An override value (Hydra syntax) that `rule` refuses."""
    if isinstance(rule, Int):
        return str(rule.min - 1) if rule.min is not None else "abc"
    if isinstance(rule, Real):
        return "abc" if rule.min is None else str(rule.min if rule.min_open else rule.min - 1)
    if isinstance(rule, (Choice, AnyOf, Predicate)):
        return "bogus"  # a word: no number, no known choice, no boolean
    if isinstance(rule, Bool):
        return "maybe"
    if isinstance(rule, Text):
        return "''"
    if isinstance(rule, Pair):
        return "[0.9]"
    if isinstance(rule, WritableDir):
        return UNDER_A_FILE
    raise AssertionError(f"no bad value known for {rule!r}")


def store_is_empty(mlflow_client) -> bool:  # noqa: ANN001
    return not all_runs(mlflow_client)


def assert_refused(run_cli, capfd, mlflow_client, overrides: list[str], *expected: str) -> None:  # noqa: ANN001
    assert run_cli(*overrides) != 0
    out = "".join(capfd.readouterr())
    for text in expected:
        assert text in out, f"{text!r} not in the output:\n{out[-3000:]}"
    assert store_is_empty(mlflow_client), "a refused config must leave no run behind"


NAMED_CASES = {
    "unknown model": (["model=foo"], "Could not find 'model/foo'", "lenet5"),
    "unknown optimizer": (["optim=rmsprop"], "Could not find 'optim/rmsprop'", "adamw"),
    "unknown data set": (["data=imagenet"], "Could not find 'data/imagenet'", "mnist5k"),
    "unknown schedule": (["sched=linear"], "Could not find 'sched/linear'", "cosine"),
    "unknown trainer": (["trainer=tpu"], "Could not find 'trainer/tpu'", "ddp_cpu"),
    "negative lr": (["optim.lr=-0.1"], "optim.lr=-0.1 is not allowed; it must be a number > 0"),
    "zero lr": (["optim.lr=0"], "optim.lr=0 is not allowed; it must be a number > 0"),
    "lr not a number": (["optim.lr=abc"], "optim.lr='abc' is not allowed; it must be a number > 0"),
    "lr is a bool": (["optim.lr=true"], "optim.lr=True is not allowed"),
    "batch size 0": (["data.batch_size=0"], "data.batch_size=0 is not allowed; it must be an integer >= 1"),
    "batch size float": (["data.batch_size=3.5"], "data.batch_size=3.5 is not allowed; it must be an integer >= 1"),
    "width 0": (["model=vgg19", "model.width=0"], "model.width=0 is not allowed; it must be a number > 0"),
    "width negative": (["model=resnet152", "model.width=-1"], "model.width=-1 is not allowed"),
    "unknown activation": (["model.activation=gelu"], "model.activation='gelu'", "['relu', 'sigmoid', 'tanh']"),
    "unknown init": (["model.init=orthogonal"], "model.init='orthogonal'", "['default', 'kaiming', 'xavier', 'normal"),
    "unknown pooling": (["model.pool=median"], "model.pool='median'", "['avg', 'max']"),
    "no end of training": (
        ["trainer.max_epochs=-1", "trainer.max_steps=-1", "sched=none"],
        "trainer.max_epochs=-1 and trainer.max_steps=-1 are both unusable (training would never end)",
    ),
    "nothing to train": (["trainer.max_epochs=0", "sched=none"], "trainer.max_epochs=0 and trainer.max_steps=-1"),
    "data dir not writable": ([f"paths.data_dir={UNDER_A_FILE}"], f"data.data_dir='{UNDER_A_FILE}'", "can write"),
    "unknown key beside a target": (["+optim.momentun=0.9"], "optim.momentun is not a setting of SGD", "momentum"),
    "model knob of another model": (["+model.width=0.5"], "model.width is not a setting of lenet5"),
    "split fractions": (["data.val_fraction=0.5", "data.test_fraction=0.5"], "the sum must be < 1"),
    "missing checkpoint": (["ckpt_path=/nonexistent/last.ckpt"], "ckpt_path='/nonexistent/last.ckpt'"),
    "resume and ckpt_path": (["resume=abc", f"ckpt_path={__file__}"], "are both set"),
    "wrong strategy": (["trainer=ddp_cpu", "trainer.strategy.process_group_backend=mpx"], "process_group_backend"),
}


@pytest.mark.parametrize("case", NAMED_CASES, ids=list(NAMED_CASES))
def test_named_bad_input_is_refused_before_any_run(run_cli, capfd, mlflow_client, case: str) -> None:
    overrides, *expected = NAMED_CASES[case]
    assert_refused(run_cli, capfd, mlflow_client, overrides, *expected)


GENERATED = sorted(k for k in KEYS if k not in META_KEYS and rule_for(k) is not None)


def with_override(cfg: DictConfig, override: str) -> DictConfig:
    """`cfg` with one command-line override applied, parsed by Hydra's own override parser."""
    parsed = OverridesParser.create().parse_override(override)
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        OmegaConf.update(cfg, parsed.key_or_group, parsed.value(), merge=False)
    return cfg


@pytest.mark.parametrize("key", GENERATED)
def test_every_key_refuses_a_bad_value(key: str) -> None:
    """The CLI cases above show that a ConfigError exits non-zero before any run; here every key raises one."""
    selection, _ = KEYS[key]
    value = bad_value(rule_for(key))
    with pytest.raises(ConfigError) as err:
        validate(with_override(CONFIGS[selection], f"{key}={value}"))
    message = str(err.value)
    assert f"{key}=" in message and "is not allowed; it must be" in message, message


def test_every_key_of_every_group_has_a_rule() -> None:
    missing = sorted(k for k in KEYS if k not in META_KEYS and rule_for(k) is None)
    assert not missing, f"keys without a validation rule (add them in src/config/schema.py): {missing}"
    assert {"data.batch_size", "optim.betas", "sched.gamma", "trainer.strategy.process_group_backend"} <= set(KEYS)


@pytest.mark.parametrize("selection", CONFIGS)
def test_every_shipped_option_passes_validation(selection: str) -> None:
    validate(CONFIGS[selection])


def test_all_problems_are_reported_at_once() -> None:
    cfg = CONFIGS["optim=sgd"]
    for override in ("optim.lr=-1", "data.batch_size=0", "model.pool=x"):
        cfg = with_override(cfg, override)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert [line.split("=")[0].strip() for line in str(err.value).splitlines()[1:]] == [
        "data.batch_size", "model.pool", "optim.lr"
    ]
