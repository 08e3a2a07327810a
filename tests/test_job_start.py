"""The joints of the entry point: the start's steps refuse to run out of turn, every user error is one
type and ends the command with its message and exit status 2, and the value a sweeper gets is the
named metric or an error that lists the metrics there are."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from src.lifecycle.exits import exit_status
from src.lifecycle.finish import JobResult, objective
from src.lifecycle.resume import ResumeError, ResumePlan
from src.lifecycle.start import STEPS, JobStart
from src.settings import ConfigError, UserError
from src.tracking.reachability import TrackingUnavailable
from src.training.data.base import DataUnavailableError
from tests.conftest import FAST
from tests.mlflow_reads import only_run


class Datamodule:
    """Records what the start asks of a data module, in order."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def leave_out(self, indices: tuple[int, ...]) -> None:
        self.calls.append(("leave_out", indices))

    def prepare_data(self) -> None:
        self.calls.append("prepare_data")


def test_steps_out_of_turn_are_refused_naming_the_next_one() -> None:
    start = JobStart(OmegaConf.create({}), ResumePlan(), skip=None)
    with pytest.raises(RuntimeError, match=r"model_fits\(\) called after plan\(\); data_ready\(\) comes next"):
        start.model_fits(object())
    with pytest.raises(RuntimeError, match=r"data_ready\(\) comes next"):
        start.callbacks(run=None, callbacks=[])
    datamodule = Datamodule()
    assert start.data_ready(datamodule) is datamodule and datamodule.calls == ["prepare_data"]
    with pytest.raises(RuntimeError, match=r"data_ready\(\) called after data_ready\(\); model_fits\(\) comes next"):
        start.data_ready(datamodule)
    assert STEPS == ("plan", "data_ready", "model_fits", "tracked_run", "callbacks")


def test_skipped_examples_are_left_out_before_the_data_is_prepared() -> None:
    from src.lifecycle.skip_resume import Skip

    start = JobStart(OmegaConf.create({}), ResumePlan(ckpt_path="x.ckpt", run_id="r"), Skip((3, 9), {}))
    datamodule = start.data_ready(Datamodule())
    assert datamodule.calls == [("leave_out", (3, 9)), "prepare_data"]
    assert start.ckpt_path == "x.ckpt"


@pytest.mark.parametrize("error", [ConfigError, ResumeError, DataUnavailableError, TrackingUnavailable])
def test_every_user_error_is_one_type_and_exits_2_with_its_message_alone(error, capsys) -> None:  # noqa: ANN001
    assert issubclass(error, UserError)
    with pytest.raises(SystemExit) as exit_info, exit_status():
        raise error("x=1 is not allowed; it must be 2")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "x=1 is not allowed; it must be 2\n"


def test_a_crash_is_not_a_user_error() -> None:
    with pytest.raises(KeyError), exit_status():
        raise KeyError("a bug")


CFG = OmegaConf.create({"optimized_metric": "val/acc", "test": True})
SEEN = {"val/acc": 0.5, "val/loss": 1.2, "train/loss": 1.0, "test/acc": 0.25}


def test_the_sweeper_gets_the_named_metric() -> None:
    assert objective(CFG, JobResult(SEEN)) == 0.5
    assert objective(OmegaConf.create({"optimized_metric": None, "test": True}), JobResult(SEEN)) == 0.25


@pytest.mark.parametrize("name", ["val/accuracy", "acc", "tst/acc"])
def test_a_misspelled_optimized_metric_is_an_error_listing_the_metrics(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        objective(OmegaConf.create({"optimized_metric": name, "test": True}), JobResult(SEEN))
    assert str(err.value) == (f"optimized_metric={name!r} is not a metric of this run; "
                              "its metrics are ['test/acc', 'train/loss', 'val/acc', 'val/loss']")


def test_no_value_when_the_run_never_reached_the_metric() -> None:
    without_test = {k: v for k, v in SEEN.items() if not k.startswith("test/")}
    assert objective(OmegaConf.create({"optimized_metric": "test/acc", "test": False}), JobResult(without_test)) is None
    diverged = JobResult({"train/loss": float("nan")}, outcome="diverged")
    assert objective(CFG, diverged) is None, "a trial that diverges before validating gives no value"


def test_a_misspelled_metric_fails_the_command_after_the_run_is_closed(run_cli, mlflow_client, capsys) -> None:  # noqa: ANN001
    code = run_cli("data=synthetic", "data.num_samples=64", "optimized_metric=val/accuracy", *FAST)
    assert code == 2
    err = capsys.readouterr().err
    assert "optimized_metric='val/accuracy' is not a metric of this run" in err and "'val/acc'" in err
    run = only_run(mlflow_client)
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed"), "the run itself is kept"
