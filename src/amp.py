"""The trainer's AMP grad scaler, found through Lightning's public precision plugin.

With `precision=16-mixed` Lightning's `MixedPrecision` plugin owns a `torch.amp.GradScaler`
(its public `scaler` attribute); with any other precision there is none. A scaler skips the
optimizer step exactly when the unscaled gradients hold Inf/NaN (then halves its scale), so the
monitor counts such steps as skipped, and the step hooks of the regularizers leave the weights
alone on them.
"""

from __future__ import annotations

from typing import Any


def grad_scaler(trainer: Any) -> Any | None:
    """The `torch.amp.GradScaler` the trainer steps through, or None (no trainer, no fp16 scaler)."""
    plugin = getattr(trainer, "precision_plugin", None)
    scaler = getattr(plugin, "scaler", None)
    return scaler if scaler is not None and scaler.is_enabled() else None
