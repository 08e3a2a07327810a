"""The extension templates in docs/templates/ work as they are, copied the way docs/extending.md says:
each Python file is loaded under the module name its YAML's `_target_` names (as if copied into
`src/`), each YAML is put in a config folder Hydra searches (as if copied into `conf/`), and the real
entry point trains with all of them. Each piece is also checked on its own against an oracle that
does not use it; the detector on a pair (a loss built to spike, one that only wobbles)."""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml
from torch import nn

from src.monitor.detectors import StepView
from src.monitor.events import HealthEvent
from src.monitor.thresholds import Thresholds
from src.paths import PROJECT_ROOT
from src.settings import ConfigError
from tests.conftest import FAST
from tests.mlflow_reads import only_run

TEMPLATES = PROJECT_ROOT / "docs" / "templates"
COPIES = {  # template -> (its config group and file, if any)
    "model.py": ("model", "model.yaml"),
    "regularizer.py": ("reg", "regularizer.yaml"),
    "datamodule.py": ("data", "data.yaml"),
    "detector.py": None,
    "instrument.py": None,
}
MODULES = {  # template -> the module name a copy into src/ gets (the YAML's `_target_` names it)
    "model.py": "src.models.tiny_cnn",
    "regularizer.py": "src.training.group_lasso",
    "datamodule.py": "src.training.data.stripes",
    "detector.py": "src.monitor.detectors.loss_spike",
    "instrument.py": "src.monitor.instruments.grad_zero",
}


def load_as(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def copied(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """Every template module, importable under the name its copy in src/ would have (removed afterwards)."""
    modules = {}
    for template, name in MODULES.items():
        monkeypatch.delitem(sys.modules, name, raising=False)
        modules[template] = load_as(TEMPLATES / template, name)
    yield modules
    for name in MODULES.values():
        sys.modules.pop(name, None)


@pytest.fixture
def conf_copies(tmp_path: Path) -> str:
    """A config folder with the YAML templates where docs/extending.md puts them; its Hydra search path."""
    for template, placement in COPIES.items():
        if placement:
            group, source = placement
            target_name = yaml.safe_load((TEMPLATES / source).read_text())
            node = target_name.get("_target_") or next(iter(target_name.values()))["_target_"]
            assert node.rsplit(".", 1)[0] == MODULES[template], "the YAML's _target_ names the copy of the .py"
            (tmp_path / "conf" / group).mkdir(parents=True, exist_ok=True)
            shutil.copy(TEMPLATES / source, tmp_path / "conf" / group / f"{node.rsplit('.', 2)[-2]}.yaml")
    return f"hydra.searchpath=[file://{tmp_path / 'conf'}]"


def test_every_template_is_listed_and_documented() -> None:
    assert {p.name for p in TEMPLATES.glob("*.py")} == set(MODULES)
    guide = (PROJECT_ROOT / "docs" / "extending.md").read_text()
    assert all(f"docs/templates/{name}" in guide for name in [*MODULES, "model.yaml", "regularizer.yaml", "data.yaml"])


def test_the_templates_train_together_through_the_real_entry_point(
    copied, conf_copies: str, run_cli, mlflow_client  # noqa: ANN001
) -> None:
    overrides = [conf_copies, "model=tiny_cnn", "reg=[group_lasso,dropout]", "data=stripes", "data.num_samples=96"]
    assert run_cli(*overrides, *FAST) == 0
    run = only_run(mlflow_client)
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
    assert run.data.params["model._target_"] == "src.models.tiny_cnn.tiny_cnn"
    assert run.data.params["reg.group_lasso.strength"] == "0.0001" and "test/acc" in run.data.metrics
    assert "train/penalty" in run.data.metrics and run.data.metrics["train/penalty"] > 0


def test_the_copied_settings_are_validated_by_their_annotations(copied, conf_copies: str, run_cli, capsys) -> None:  # noqa: ANN001
    code = run_cli(conf_copies, "model=tiny_cnn", "model.width=0", "reg=[group_lasso]", "reg.group_lasso.strength=-1",
                   "data=stripes", "data.period=0", *FAST)
    assert code == 2
    err = capsys.readouterr().err
    assert "model.width=0 is not allowed; it must be an integer >= 1" in err
    assert "reg.group_lasso.strength=-1 is not allowed; it must be a number >= 0" in err
    assert "data.period=0 is not allowed; it must be a number > 0" in err


def plain_net(in_channels: int = 1, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """A builder with no `dropout` argument."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_classes))


def test_a_model_without_dropout_refuses_reg_dropout_naming_the_key(tmp_path: Path, run_cli, mlflow_client,  # noqa: ANN001
                                                                    capsys) -> None:  # noqa: ANN001
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "plain.yaml").write_text(
        "_target_: tests.test_templates.plain_net\nin_channels: ${data.in_channels}\n"
        "num_classes: ${data.num_classes}\nimage_size: ${data.image_size}\n")
    search = f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    assert run_cli(search, "model=plain", "data=synthetic", "data.num_samples=64", *FAST) == 0, "it trains without"
    before = len(mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()]))
    assert run_cli(search, "model=plain", "reg=dropout", "data=synthetic", *FAST) == 2
    err = capsys.readouterr().err
    assert "reg.dropout is not allowed with model._target_='tests.test_templates.plain_net'" in err
    assert "sets the model's dropout argument and plain_net takes none" in err and "Traceback" not in err
    after = len(mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()]))
    assert after == before, "refused before any run"


def test_model_template_shapes_dropout_and_checks(copied) -> None:  # noqa: ANN001
    tiny_cnn = copied["model.py"].tiny_cnn
    net = tiny_cnn(in_channels=1, num_classes=4, image_size=20, width=8)
    assert net(torch.zeros(2, 1, 20, 20)).shape == (2, 4)
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())
    assert sum(isinstance(m, nn.Dropout) for m in tiny_cnn(dropout=0.3).modules()) == 1
    with pytest.raises(ConfigError, match=r"model.width=0 is not allowed"):
        tiny_cnn(width=0)


def known_linear() -> nn.Module:
    net = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, -2.0, 2.0]]))
    return net


def test_regularizer_template_penalty_and_its_gradient(copied) -> None:  # noqa: ANN001
    group_lasso = copied["regularizer.py"].GroupLasso(strength=0.5)
    net = known_linear()
    assert group_lasso.penalty(net).item() == pytest.approx(0.5 * (5 + 0 + 3))  # row norms 5, 0, 3 by hand
    (param, grad), = group_lasso.penalty_gradient(net)
    expected = 0.5 * torch.tensor([[3 / 5, 4 / 5, 0.0], [0.0, 0.0, 0.0], [1 / 3, -2 / 3, 2 / 3]])
    assert param is net.weight
    torch.testing.assert_close(grad, expected)
    net.zero_grad()
    group_lasso.penalty(net).backward()  # autograd's route through the penalty agrees (0 on the zero row)
    torch.testing.assert_close(net.weight.grad, expected)
    assert group_lasso.penalizes_weights and group_lasso.sparsifies and not group_lasso.steps_weights


def test_data_template_is_seeded_balanced_and_learnable_by_orientation(copied, tmp_path: Path) -> None:  # noqa: ANN001
    stripes = copied["datamodule.py"].StripesDataModule
    data = stripes(data_dir=tmp_path, num_samples=200, num_classes=4, image_size=16, noise=0.0, period=4.0)
    x, y = data.load_tensors()
    assert x.shape == (200, 1, 16, 16) and torch.bincount(y).tolist() == [50] * 4
    torch.testing.assert_close(x, stripes(data_dir=tmp_path, num_samples=200, num_classes=4, image_size=16,
                                          noise=0.0, period=4.0).load_tensors()[0])
    # an oracle that knows only gratings: a noiseless 0° grating is constant down each column, a 90° one
    # along each row
    assert float(x[y == 0].diff(dim=2).abs().max()) < 1e-5 and float(x[y == 2].diff(dim=3).abs().max()) < 1e-5
    data.setup()
    assert data.describe().name == "stripes" and sum(data.split_sizes().values()) == 200


def test_detector_template_fires_on_a_sustained_spike_not_on_a_wobble(copied) -> None:  # noqa: ANN001
    detector_class = copied["detector.py"].LossSpikeDetector

    def events(losses: list[float]) -> list:  # noqa: ANN202
        detector = detector_class(Thresholds(), factor=3.0, patience=3)
        return [e for step, loss in enumerate(losses) if (e := detector.observe(StepView(step, loss=loss)))]

    spiking = [1.0] * 20 + [10.0] * 5  # jumps tenfold at step 20 and stays
    wobbling = [1.0, 1.5] * 10 + [4.0] + [1.0] * 4  # one batch at 4x, then back
    fired = events(spiking)
    assert [(e.kind, e.step, e.since, e.value, e.threshold) for e in fired] == [("loss_spike", 22, 20, 10.0, 3.0)]
    assert events(wobbling) == []
    assert events([math.nan] * 5 + spiking) == [HealthEvent(27, "loss_spike", 10.0, 3.0, None, "loss", 25)]


def test_detector_template_state_survives_a_checkpoint(copied) -> None:  # noqa: ANN001
    detector_class = copied["detector.py"].LossSpikeDetector
    first = detector_class(Thresholds(), patience=3)
    for step in range(10):
        first.observe(StepView(step, loss=1.0))
    first.observe(StepView(10, loss=9.0))
    second = detector_class(Thresholds(), patience=3)
    second.load_state_dict(first.state_dict())
    assert [second.observe(StepView(s, loss=9.0)) is not None for s in (11, 12)] == [False, True]


def test_instrument_template_measures_the_zero_share_on_due_steps_only(copied) -> None:  # noqa: ANN001
    instrument = copied["instrument.py"].GradientZerosInstrument(every_n_steps=2)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():  # two hidden units dead for any input, four alive for any input
        net[0].weight.clamp_(-0.1, 0.1)
        net[0].bias.copy_(torch.tensor([-100.0, -100.0, 100.0, 100.0, 100.0, 100.0]))
    instrument.bind(net, ["0", "2"])
    net(torch.randn(8, 4)).sum().backward()
    instrument.after_backward(1, None, None, None)  # not due: nothing stored
    instrument.after_backward(2, None, None, None)
    (step, sample), = instrument.read({"0": "00.0", "2": "01.2"})
    # by hand: the dead units' rows of layer 0 (2 of 6 rows) get no gradient; layer 2's columns for them neither
    assert step == 2
    assert sample["grad_zero/00.0"] == pytest.approx(2 / 6) and sample["grad_zero/01.2"] == pytest.approx(2 / 6)
