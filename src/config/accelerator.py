"""The accelerator a config asks for, checked against this machine before any run exists.

Lightning finds a missing GPU only when it builds the trainer, after the MLflow run was created:
the run would be left FAILED with nothing in it. `the_machine_has_the_accelerator` asks torch
the same question first, right after the config is validated (`src/train.py`). It is a check of
this machine, not of the config: a shipped `trainer=gpu` is valid where a GPU exists.
"""

from __future__ import annotations

from omegaconf import DictConfig

from src.settings import ConfigError

GPU_NAMES = ("gpu", "cuda")


def device_count(accelerator: str) -> int:
    """How many devices of this kind torch sees here (CUDA or ROCm GPUs, Apple's MPS)."""
    import torch

    if accelerator in GPU_NAMES:
        return torch.cuda.device_count()
    if accelerator == "mps":
        return int(torch.backends.mps.is_available())
    return -1  # cpu, auto, or a kind torch cannot count here (tpu, a custom Accelerator): not checked


def asked_devices(devices: object) -> int | None:
    """How many devices `trainer.devices` asks for (None: 'auto' or -1, whatever there is)."""
    if isinstance(devices, int):
        return None if devices == -1 else devices
    if isinstance(devices, str):
        text = devices.strip()
        if text.lstrip("-").isdigit():
            return asked_devices(int(text))
        return len([d for d in text.split(",") if d.strip()]) if "," in text else None
    try:
        return max(int(d) for d in devices) + 1  # a list of device indices
    except (TypeError, ValueError):
        return None


def check_accelerator(cfg: DictConfig) -> None:
    """ConfigError naming `trainer.accelerator`/`trainer.devices` when this machine lacks what they ask for."""
    problems = accelerator_problems(cfg)
    if problems:
        raise ConfigError("invalid config for this machine:\n  " + "\n  ".join(problems))


def accelerator_problems(cfg: DictConfig) -> list[str]:
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    have = device_count(accelerator)
    if have < 0:
        return []
    if have == 0:
        kind = "CUDA GPU" if accelerator in GPU_NAMES else "MPS device"
        return [f"trainer.accelerator={accelerator!r} needs a {kind} and this machine has none; train on the CPU "
                "with trainer=default (or trainer.accelerator=auto)"]
    wanted = asked_devices(trainer.get("devices", "auto"))
    if wanted is not None and wanted > have:
        return [f"trainer.devices={trainer.get('devices')} asks for {wanted} {accelerator} device(s) and this machine "
                f"has {have}; set trainer.devices={have} or fewer"]
    return []
