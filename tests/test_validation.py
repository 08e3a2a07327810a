"""Bad input fails in the first seconds, through the real entry point, with a message naming the key,
the value and what is allowed, and leaves the MLflow store without a run.

Besides the named cases, one case per key of every option of every config group is generated from
the annotation its schema declares, and a coverage test makes sure every key is declared.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, Required, Union, get_args, get_origin

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict
from pydantic.fields import FieldInfo

import src  # noqa: F401 - registers the config resolvers
from src.config import validate
from src.config.validation import nodes, settings_of
from src.paths import CONFIG_DIR, PROJECT_ROOT
from src.settings import ConfigError
from src.settings.types import writable_dir
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
    """The root config with each option of each group (and each experiment) selected once."""
    selections = [f"{g}={o}" for g, o in group_options()]
    selections += [f"experiment={f.stem}" for f in sorted((CONFIG_DIR / "experiment").glob("*.yaml"))]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return {selection: compose(config_name="train", overrides=[selection]) for selection in selections}


def declared_keys(cfg: DictConfig) -> dict[str, Any]:
    """Every setting key of `cfg` -> the annotation its schema declares (None when it declares none)."""
    keys = {}
    for item in nodes(cfg):
        assert not isinstance(item, str), item
        values, _, unresolved = settings_of(item.node, item.skip)
        for key in [*values, *unresolved]:
            keys[item.prefix + key] = item.schema.fields.get(key)
    return keys


CONFIGS = compose_all()
KEYS: dict[str, tuple[str, Any]] = {}  # key -> (the first `group=option` that has it, its declared annotation)
for _selection, _cfg in CONFIGS.items():
    for _key, _annotation in declared_keys(_cfg).items():
        KEYS.setdefault(_key, (_selection, _annotation))


def bad_value(annotation: Any) -> str:
    """An override value (Hydra syntax) that `annotation` refuses, derived from the annotation."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Required, NotRequired):
        return bad_value(args[0])
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return bad_value(options[0]) if len(options) == 1 else "bogus"  # a word: no number, choice or boolean
    if origin is Literal:
        return "bogus"
    if origin is Annotated:
        metadata = [m for item in args[1:] for m in (item.metadata if isinstance(item, FieldInfo) else [item])]
        if any(getattr(m, "func", None) is writable_dir for m in metadata):
            return UNDER_A_FILE
        bounds = {k: getattr(m, k) for m in metadata for k in ("gt", "ge", "lt", "le", "min_length") if hasattr(m, k)}
        if "min_length" in bounds:
            return "[0.5]" if bounds["min_length"] > 1 else "[]"
        if "gt" in bounds or "ge" in bounds:
            return str(bounds["gt"]) if "gt" in bounds else str(bounds["ge"] - 1)
        if "lt" in bounds or "le" in bounds:
            return str(bounds.get("lt", bounds.get("le", 0) + 1))
        return "''" if args[0] is str else bad_value(args[0])
    return {bool: "maybe", int: "3.5", float: "abc", str: "[1]"}[annotation]


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


GENERATED = sorted(k for k, (_, annotation) in KEYS.items() if annotation not in (None, Any))


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
    selection, annotation = KEYS[key]
    value = bad_value(annotation)
    with pytest.raises(ConfigError) as err:
        validate(with_override(CONFIGS[selection], f"{key}={value}"))
    message = str(err.value)
    assert f"{key}=" in message and "is not allowed; it must be" in message, message


def test_every_key_of_every_shipped_option_is_declared_by_its_schema() -> None:
    undeclared = sorted(k for k, (_, annotation) in KEYS.items() if annotation in (None, Any))
    assert not undeclared, f"keys without a declared type (in their signature or src/config/): {undeclared}"
    assert {"data.batch_size", "optim.betas", "sched.gamma", "trainer.strategy.process_group_backend",
            "reg.l1.strength", "monitor.max_loss", "model.activation", "seed"} <= set(KEYS)


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


def test_a_bad_setting_prints_its_message_alone_and_exits_2(tmp_path: Path, mlflow_store: str, mlflow_client) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    proc = subprocess.run(
        [sys.executable, "-m", "src.train", "optim.lr=0", "+trainer.max_epoch=3", f"paths.log_dir={tmp_path}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert lines[:2] == ["invalid config:", "  optim.lr=0 is not allowed; it must be a number > 0"], proc.stderr
    assert lines[2].startswith("  trainer.max_epoch is not a setting of Trainer (did you mean 'max_epochs'?); its")
    assert len(lines) == 3 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert store_is_empty(mlflow_client)


@pytest.mark.slow  # the real CLI in a subprocess: 26 s loaded (its sibling stays fast)
def test_a_bad_environment_setting_is_a_user_error_too(tmp_path: Path, mlflow_store: str, mlflow_client) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "GRADREG_HEARTBEAT_S": "abc"}
    proc = subprocess.run(
        [sys.executable, "-m", "src.train", "data=synthetic", f"paths.log_dir={tmp_path}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "GRADREG_HEARTBEAT_S='abc' is not allowed; it must be a number of seconds > 0" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert store_is_empty(mlflow_client)


def test_a_crash_keeps_its_traceback_and_exits_1(run_cli, capfd) -> None:
    code = run_cli("data=synthetic", "data.num_samples=64", "sched=none", "trainer.max_steps=3", "test=false",
                   "trainer.enable_progress_bar=false", "+callbacks.boom._target_=tests.helpers.RaiseAtStep",
                   "+callbacks.boom.step=1")
    err = capfd.readouterr().err
    assert code == 1
    assert "Traceback" in err and "RuntimeError: injected failure at step 1" in err, err[-3000:]


def test_a_multirun_with_a_refused_job_is_refused_whole_before_launch(run_cli, capfd, mlflow_client) -> None:
    code = run_cli("hydra.mode=MULTIRUN", "optim.lr=0,0.05", "data=synthetic", "data.num_samples=64", "sched=none",
                   "trainer.max_steps=2", "test=false", "trainer.enable_progress_bar=false")
    assert code == 2, "every job's config is checked in the launching process (src/config/sweep_validation.py)"
    assert "job 0 (optim.lr=0):\n    optim.lr=0 is not allowed; it must be a number > 0" in capfd.readouterr().err
    assert store_is_empty(mlflow_client), "no job ran, not even the valid one"


def test_min_epochs_or_steps_are_refused_when_the_monitor_must_be_able_to_stop(compose) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.min_epochs=2 is not allowed together with "
                                          r"monitor\.on_nonfinite=stop and monitor\.on_divergence=stop"):
        validate(compose("+trainer.min_epochs=2"))
    with pytest.raises(ConfigError, match=r"trainer\.min_steps=5 is not allowed together with monitor\.on_divergence"):
        validate(compose("+trainer.min_steps=5", "monitor.on_nonfinite=continue"))
    validate(compose("+trainer.min_epochs=2", "monitor.on_nonfinite=continue", "monitor.on_divergence=continue"))
    validate(compose("+trainer.min_epochs=2", "monitor=off"))
    validate(compose("+trainer.min_epochs=0", "+trainer.min_steps=null"))


def test_a_target_the_project_does_not_know_is_checked_by_its_arguments(compose) -> None:
    injected = ["+callbacks.boom._target_=tests.helpers.RaiseAtStep", "+callbacks.boom.stage=test"]
    validate(compose(*injected))
    with pytest.raises(ConfigError, match=r"callbacks\.boom\.stp is not a setting of RaiseAtStep \(did you mean "
                                          r"'step'\?\); its settings are \['stage', 'step'\]"):
        validate(compose(*injected, "+callbacks.boom.stp=2"))
    with pytest.raises(ConfigError, match=r"callbacks\.nope\._target_='tests\.helpers\.Nope' cannot be imported"):
        validate(compose("+callbacks.nope._target_=tests.helpers.Nope"))


def test_hand_written_keys_are_real_arguments_of_their_targets() -> None:
    from hydra.utils import get_object

    from src.config import callbacks, optim, sched, trainer
    from src.settings.signature import signature_schema, typed_dict_schema

    for table in (optim.SCHEMAS, sched.SCHEMAS, trainer.SCHEMAS, callbacks.SCHEMAS):
        for name, settings in table.items():
            target = signature_schema(get_object(name))  # DDPStrategy hands **kwargs on to DDP: any name
            assert target.accepted is None or set(typed_dict_schema(settings, name).fields) <= target.accepted, name


def test_values_are_checked_resolved_and_reserved_knobs_refused(compose) -> None:
    with pytest.raises(ConfigError, match=r"model\.in_channels=0 is not allowed; it must be an integer >= 1"):
        validate(compose("data=synthetic", "data.in_channels=0"))  # model.in_channels: ${data.in_channels}
    with pytest.raises(ConfigError, match=r"model\.dropout is not a setting of the model config; the dropout"):
        validate(compose("+model.dropout=0.3"))
