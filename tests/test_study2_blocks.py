"""The second edition's blocks (conf/experiment/study2_*.yaml): every job composes and validates, each block gives
its regularizers the time and dose it claims, and the runner's queue resumes what was stopped."""

from __future__ import annotations

import importlib.util
import math
import sys
from types import SimpleNamespace

import pytest

from src.config.validation import validate
from src.paths import CONFIG_DIR

SCRIPTS = CONFIG_DIR.parent / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


queue = load("study_queue")
BLOCKS = queue.block_names()
MATCHED = {"late_dying", "rescued_lenet5_exploding", "rescued_vgg19_dying"}  # L2 doses matched on cumulative decay
HORIZON = {"long_l1_adam": 370_000, "long_l2_sgd": 180_000, "bn_l2_vgg19": 3000, "late_dying": 5000,
           "rescued_lenet5_exploding": 500, "rescued_vgg19_dying": 500, "resnet152_plain_long": 60}


def cumulative_decay(cfg) -> float:
    """2·η·λ·T/(1−β) of an L2 (penalty) arm under SGD with momentum β."""
    return 2 * cfg.optim.lr * cfg.reg.l2.strength * cfg.trainer.max_steps / (1 - cfg.optim.momentum)


def test_the_second_edition_has_the_issue_blocks() -> None:
    assert set(HORIZON) | {"width_resnet152"} <= set(BLOCKS)


@pytest.mark.parametrize("block", BLOCKS)
def test_every_job_composes_validates_and_runs_as_long_as_it_claims(compose, block: str) -> None:
    jobs = queue.block_jobs(block)
    assert len({j.seed for j in jobs}) >= 2 and jobs[0].seed == "0"
    for job in jobs:
        if job.arm.startswith("dropout_trunk") and not (CONFIG_DIR / "study" / "arm" / f"{job.arm}.yaml").exists():
            continue  # the trunk placement's arms come with the models' placement knob
        cfg = compose(*job.overrides())
        validate(cfg)
        assert cfg.logger.experiment_name == "study2"
        assert cfg.trainer.max_steps >= HORIZON.get(block, 1)
        if block in MATCHED and "l2" in cfg.reg:
            decay = cumulative_decay(cfg)
            assert min(abs(math.log10(decay / d)) for d in (0.3, 3, 30)) < 0.01, f"{job.arm}: decay {decay:.3g}"


def test_the_long_blocks_are_the_blog_posts_runs(compose) -> None:
    l1 = compose(*queue.Job("long_l1_adam", "l1_1e-3", "0").overrides())
    assert l1.optim._target_ == "torch.optim.Adam" and l1.reg.l1.strength == 1e-3 and l1.trainer.max_steps == 370_000
    l2 = compose(*queue.Job("long_l2_sgd", "none", "1").overrides())
    assert l2.optim._target_ == "torch.optim.SGD" and dict(l2.reg) == {}  # `none` keeps the block's optimizer


def run(status: str) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(status=status, run_id="r", start_time=0))


def test_the_queue_starts_resumes_or_leaves_each_job() -> None:
    assert queue.action(None, False) == "start"
    assert queue.action(run("KILLED"), False) == "resume"  # interrupted, or closed lost by the reaper
    assert queue.action(run("FINISHED"), False) == "skip" and queue.action(run("RUNNING"), False) == "skip"
    assert queue.action(run("FAILED"), False) == "skip" and queue.action(run("FAILED"), True) == "resume"
    tags = {"overrides": "experiment=study2_late_dying +study/arm=l1_1e-3 seed=2"}
    assert queue.job_of(tags) == queue.Job("late_dying", "l1_1e-3", "2")
    assert queue.job_of({"overrides": "experiment=study_lenet5_dying +study/arm=none seed=0"}) is None


def test_a_stop_signal_reaches_the_running_job_and_starts_no_further_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM to the runner while it waits for a free slot: the job gets it, and the queue launches nothing more."""
    import os
    import signal
    import subprocess
    import threading

    jobs = [queue.Job("late_dying", "none", str(seed)) for seed in range(3)]
    launched: list[queue.Job] = []

    def launch(self, job, resume_id):  # noqa: ANN001
        launched.append(job)
        self.running[subprocess.Popen(["sleep", "30"])] = job
        self.started.setdefault(job.block, 0.0)

    monkeypatch.setattr(queue, "block_jobs", lambda block: jobs)
    monkeypatch.setattr(queue, "runs_by_job", lambda client, experiment: {})
    monkeypatch.setattr(queue.Queue, "launch", launch)
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    timing = queue.run_queue(None, ["late_dying"], 1, "study2", [])
    assert launched == jobs[:1] and timing["interrupted"] is True
    assert signal.getsignal(signal.SIGTERM) is not queue.Queue.stop  # the runner's handlers are given back


def test_a_stop_signal_during_the_store_lookup_starts_no_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookup of a job's run takes seconds on a large store; a SIGTERM then must not be followed by a launch."""
    import os
    import signal

    launched: list[queue.Job] = []

    def slow_lookup(client, experiment):  # noqa: ANN001
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the queue: it is stopping from here on
        return {}

    monkeypatch.setattr(queue, "runs_by_job", slow_lookup)
    monkeypatch.setattr(queue.Queue, "launch", lambda self, job, resume_id: launched.append(job))
    timing = queue.run_queue(None, ["late_dying"], 1, "study2", [])
    assert launched == [] and timing["interrupted"] is True


def test_a_job_whose_process_died_is_resumed_and_one_still_running_is_left_alone(mlflow_client) -> None:  # noqa: ANN001
    """A job's run left RUNNING by a killed process (no `src.train` started since, so nothing reaped it) is closed
    lost and resumed; a job whose process lives (another runner's) is skipped."""
    from src.tracking.liveness import process_tags
    from tests.test_reaper import dead_process_tags

    experiment = mlflow_client.create_experiment("study2")
    runs = {}
    for seed, tags in (("0", dead_process_tags()), ("1", process_tags())):
        overrides = f"experiment=study2_late_dying +study/arm=none seed={seed} logger.experiment_name=study2"
        runs[seed] = mlflow_client.create_run(experiment, tags={**tags, "overrides": overrides}).info.run_id
    found = queue.runs_by_job(mlflow_client, "study2")
    dead, live = (found[queue.Job("late_dying", "none", seed)] for seed in ("0", "1"))
    assert (dead.info.run_id, dead.info.status, dead.data.tags["outcome"]) == (runs["0"], "KILLED", "lost")
    assert (live.info.run_id, live.info.status) == (runs["1"], "RUNNING")
    assert (queue.action(dead, False), queue.action(live, False)) == ("resume", "skip")


def test_the_queue_runs_only_the_arms_and_seeds_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    launched: list[queue.Job] = []
    monkeypatch.setattr(queue, "runs_by_job", lambda client, experiment: {})
    monkeypatch.setattr(queue.Queue, "launch", lambda self, job, resume_id: launched.append(job))
    queue.run_queue(None, ["long_l2_sgd"], 1, "study2", [], arms=["l2_1e-3", "l2_1e-4"], seeds=["1"])
    assert launched == [queue.Job("long_l2_sgd", "l2_1e-3", "1"), queue.Job("long_l2_sgd", "l2_1e-4", "1")]


@pytest.mark.parametrize("flags", [["--arms", "l2_9e-9"], ["--seeds", "7"]])
def test_an_arm_or_seed_no_block_has_is_refused_before_anything_runs(flags: list[str],
                                                                      capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        load("study").main(["--blocks", "long_l2_sgd", *flags])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and flags[0] in err and flags[1] in err and "allowed:" in err
    assert "l2_1e-4" in err or "0, 1" in err


def test_a_report_written_elsewhere_leaves_the_committed_prose_alone(tmp_path) -> None:
    study = load("study")
    assert study.prose_path(study.ROOT / "docs" / "seed_study2") == study.ROOT / "docs" / "seed_study.md"
    assert study.prose_path(tmp_path) == tmp_path / "seed_study.md"


def test_the_gpu_scale_composes_every_block_at_full_width_on_cifar10_at_its_own_horizon(compose) -> None:
    """`scripts/study.py --scale gpu`: CIFAR-10, the GPU trainer, full width; each block keeps its max_steps."""
    study = load("study")
    for block in BLOCKS:
        job = queue.block_jobs(block)[0]
        base = compose(*job.overrides())
        cfg = compose(*job.overrides(), *study.gpu_overrides(block))
        validate(cfg)
        assert cfg.data._target_.endswith("CIFAR10DataModule") and cfg.trainer.accelerator == "gpu"
        assert cfg.model.in_channels == 3 and cfg.trainer.max_steps == base.trainer.max_steps
        assert cfg.model.get("width", 1.0) == (base.model.width if block.startswith("width_") else 1.0)
