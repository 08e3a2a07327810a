"""ResNet-152's signal-propagation knobs (`norm`, `residual`, `zero_init_residual`): parameter counts against
torchvision's, forward shapes, what each knob does to a block, the activation growth that makes an
unnormalized ResNet explode at init beside the zero-init that keeps it flat, a training step, and bad values
refused in the config's words."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck

from src.models import resnet152
from src.models.resnet import PlainBottleneck
from src.settings import ConfigError
from tests.conftest import FAST
from tests.mlflow_reads import all_runs
from tests.test_models import depth, n_params

THIN = {"in_channels": 1, "width": 0.0625}


def torchvision_params_kept(norm: str, residual: bool) -> int:
    """torchvision's ResNet-152 parameters, less the norm layers (norm=none) and the projection shortcuts
    (residual=False): what our net must have at width 1 with the ImageNet stem."""
    ref = torchvision.models.resnet152(weights=None, num_classes=10)
    kept = 0
    for name, module in ref.named_modules():
        dropped = (norm == "none" and isinstance(module, nn.BatchNorm2d)) or (not residual and ".downsample" in name)
        kept += 0 if dropped else sum(p.numel() for p in module.parameters(recurse=False))
    return kept


@pytest.mark.parametrize("norm, residual", [("batch", False), ("none", True), ("none", False)])
def test_parameter_count_at_width_1_is_torchvision_s_less_what_the_knob_removes(norm: str, residual: bool) -> None:
    ours = resnet152(in_channels=3, num_classes=10, small_input=False, norm=norm, residual=residual)
    assert n_params(ours) == torchvision_params_kept(norm, residual)
    assert depth(ours) == (156 if residual else 152)  # 151 convs + fc, plus 4 projection convs when residual
    assert any(isinstance(m, nn.BatchNorm2d) for m in ours.modules()) == (norm == "batch")


def test_plain_net_has_no_shortcut_and_keeps_the_downsampling() -> None:
    plain = resnet152(**THIN, residual=False, norm="none")
    blocks = [m for m in plain.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 50 and all(isinstance(b, PlainBottleneck) and b.downsample is None for b in blocks)
    assert [b.conv2.stride for b in blocks if b.conv2.stride != (1, 1)] == [(2, 2)] * 3  # stages 2-4 halve the maps
    x = torch.rand(2, blocks[1].conv1.in_channels, 8, 8)
    nn.init.zeros_(blocks[1].conv3.weight)
    assert torch.count_nonzero(blocks[1](x)) == 0  # a zeroed branch leaves nothing: no shortcut carries x
    residual = resnet152(**THIN, norm="none")
    block = [m for m in residual.modules() if isinstance(m, Bottleneck)][1]
    nn.init.zeros_(block.conv3.weight)
    torch.testing.assert_close(block(x), x)  # the same block with its shortcut passes x (x >= 0) through


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_zero_init_residual_makes_every_block_start_as_its_shortcut(norm: str) -> None:
    net = resnet152(**THIN, norm=norm, zero_init_residual=True).eval()
    blocks = [m for m in net.modules() if isinstance(m, Bottleneck)]
    zeroed = [b.bn3.weight if norm == "batch" else b.conv3.weight for b in blocks]
    assert all(torch.count_nonzero(w) == 0 for w in zeroed)
    x = torch.rand(2, blocks[1].conv1.in_channels, 8, 8)
    torch.testing.assert_close(blocks[1](x), x)
    if norm == "none":  # the other branch layers keep torchvision's init
        assert all(torch.count_nonzero(b.conv1.weight) > 0 for b in blocks)


def block_rms(net: nn.Module, x: torch.Tensor) -> list[float]:
    """RMS of each bottleneck's output, in depth order, for one forward pass at init."""
    rms: list[float] = []
    handles = [m.register_forward_hook(lambda mod, inp, out: rms.append(out.pow(2).mean().sqrt().item()))
               for m in net.modules() if isinstance(m, Bottleneck)]
    with torch.no_grad():
        logits = net(x)
    for h in handles:
        h.remove()
    assert len(rms) == 50 and torch.isfinite(logits).all()
    return rms


def test_without_norm_torchvision_init_explodes_over_depth_and_zero_init_residual_does_not() -> None:
    """Kaiming fan-out keeps each branch's output about as large as its input, so x + F(x) doubles the
    variance per block (measured at width 1/16: block RMS 0.24 -> 1.4e5 over 50 blocks)."""
    torch.manual_seed(0)
    x = torch.randn(8, 1, 32, 32)
    exploding = block_rms(resnet152(**THIN, norm="none"), x)
    assert exploding[-1] > 1e3 * exploding[0]
    assert all(b > a for a, b in zip(exploding[20:30], exploding[21:31], strict=True))  # grows block by block
    flat = block_rms(resnet152(**THIN, norm="none", zero_init_residual=True), x)
    assert max(flat) <= flat[0] * (1 + 1e-6)  # identity blocks keep it, the 3 strided projections shrink it
    normalized = block_rms(resnet152(**THIN), x)
    assert max(normalized) < 20 * normalized[0]  # batch norm resets the scale in every branch


@pytest.mark.parametrize("knobs", [
    {"norm": "none", "zero_init_residual": True}, {"residual": False}, {"norm": "none", "residual": False},
    {"zero_init_residual": True},
], ids=["none-zero-init", "plain", "plain-none", "batch-zero-init"])
def test_each_variant_runs_and_takes_a_training_step(knobs: dict) -> None:
    torch.manual_seed(1)
    net = resnet152(**THIN, num_classes=7, **knobs)
    x, y = torch.randn(4, 1, 32, 32), torch.arange(4) % 7
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())  # none unused
    before = [p.detach().clone() for p in net.parameters()]
    torch.optim.SGD(net.parameters(), lr=0.01).step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert torch.isfinite(nn.functional.cross_entropy(net(x), y))
    assert net.eval()(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_knobs_compose_and_train_through_the_config(compose, tmp_path) -> None:
    import pytorch_lightning as pl

    from src.training.builders import build_datamodule, build_module

    cfg = compose("model=resnet152", "model.width=0.0625", "model.norm=none", "model.zero_init_residual=true",
                  "data=synthetic", "data.num_samples=64")
    module = build_module(cfg)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in module.net.modules())
    trainer = pl.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                         enable_progress_bar=False)
    trainer.fit(module, datamodule=build_datamodule(cfg))
    assert trainer.global_step == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"norm": "layer"}, "model.norm='layer' is not allowed; it must be one of ['batch', 'none']"),
    ({"residual": "no"}, "model.residual='no' is not allowed; it must be true or false"),
    ({"zero_init_residual": 1}, "model.zero_init_residual=1 is not allowed; it must be true or false"),
    ({"init": "default"}, "model.init='default' is not allowed; it must be one of ['torchvision', 'kaiming', "),
    ({"zero_init_residual": True, "residual": False},
     "model.zero_init_residual=true is not allowed together with model.residual=false"),
])
def test_bad_knob_values_name_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        resnet152(**THIN, **kwargs)
    assert str(err.value).startswith(message), err.value


@pytest.mark.parametrize("overrides, message", [
    (["model.norm=group"], "model.norm='group' is not allowed; it must be one of ['batch', 'none']"),
    (["model.residual=false", "model.zero_init_residual=true"],
     "model.zero_init_residual=true is not allowed together with model.residual=false"),
])
def test_bad_knob_values_stop_the_cli_before_any_run(run_cli, mlflow_client, capsys, overrides, message) -> None:
    assert run_cli("model=resnet152", "model.width=0.0625", "data=synthetic", "data.num_samples=64",
                   "trainer.max_steps=1", *FAST, *overrides) == 2
    assert message in capsys.readouterr().err
    assert all_runs(mlflow_client) == []
