"""Gradient-flow pictures: a heatmap (layers x steps, log10 of a per-layer gradient measure) and per-layer lines.

The monitor draws the relative data gradient ‖g‖/‖θ‖ (the measure its detectors read: free of
the layers' sizes, so rows of the heatmap compare), from its bounded history (`history.py`). With
the instruments on, the line figure gains a panel of the back-propagated signal ‖∂L/∂z‖ (log10 RMS)
and one of the dead-ReLU fraction per layer, on the instruments' own sampled steps.

Matplotlib's Agg backend only (no display needed). Steps are thinned to at most `max_columns`
evenly spaced ones, so a 100k-step run still draws in well under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY = 1e-30  # floor before log10, so a zero value gives a finite (very negative) one


def _thin(steps: np.ndarray, values: np.ndarray, max_columns: int) -> tuple[np.ndarray, np.ndarray]:
    if len(steps) <= max_columns:
        return steps, values
    keep = np.unique(np.linspace(0, len(steps) - 1, max_columns).round().astype(int))
    return steps[keep], values[keep]


def _log10(values: np.ndarray) -> np.ndarray:
    """log10 of the norms; non-finite norms become NaN (drawn as 'bad' cells), zeros the floor."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.log10(np.maximum(values, TINY))
    out[~np.isfinite(values)] = np.nan
    return out


def save_gradient_flow(
    steps: np.ndarray,
    layer_norms: np.ndarray,
    labels: list[str],
    out_dir: Path,
    title: str = "",
    max_columns: int = 2000,
    max_ticks: int = 40,
    quantity: str = "relative data gradient ‖g‖/‖θ‖",
    panels: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[Path]:
    """Write `gradient_flow_heatmap.png` and `gradient_flow_lines.png` into `out_dir`; return their paths.

    Args:
        steps: (n,) optimizer steps.
        layer_norms: (n, L) the per-layer measure per step, layers in forward order (NaN = missing or non-finite).
        labels: (L,) layer labels (`03.features.6`).
        quantity: what the values are, for the axis labels.
        panels: `signal` and/or `dead`: (steps, (n, L) values) from the instruments; a panel each in the line
            figure when it has samples.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    if len(steps) == 0 or layer_norms.shape[1] == 0:
        return []
    steps, layer_norms = _thin(np.asarray(steps), np.asarray(layer_norms, dtype=np.float64), max_columns)
    logs = _log10(layer_norms)
    n_layers = len(labels)
    ticks = np.unique(np.linspace(0, n_layers - 1, min(n_layers, max_ticks)).round().astype(int))
    paths = []

    height = min(16.0, 2.5 + 0.18 * min(n_layers, max_ticks))
    fig, ax = plt.subplots(figsize=(10, height))
    cmap = plt.get_cmap("viridis").with_extremes(bad="red")  # red cells: non-finite norms
    image = ax.imshow(
        np.ma.masked_invalid(logs.T), aspect="auto", interpolation="nearest", cmap=cmap, origin="upper",
        extent=(float(steps[0]) - 0.5, float(steps[-1]) + 0.5, n_layers - 0.5, -0.5),
    )
    ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=7)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("layer (forward order, input at top)")
    ax.set_title(f"gradient flow: log10 {quantity} per layer (red = NaN/Inf/none) {title}".strip())
    fig.colorbar(image, ax=ax, label=f"log10 {quantity}")
    fig.tight_layout()
    paths.append(out_dir / "gradient_flow_heatmap.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    extra = [(k, *v) for k, v in (panels or {}).items() if len(v[0]) and np.isfinite(v[1]).any()]
    fig, axes = plt.subplots(1 + len(extra), 1, figsize=(10, 5 + 3.2 * len(extra)), squeeze=False)
    ax = axes[0, 0]
    colors = plt.get_cmap("plasma")(np.linspace(0, 0.9, n_layers))
    marker = "." if len(steps) <= 100 else None  # a short run (or one that stopped early) still shows
    for i in range(n_layers):
        ax.plot(steps, logs[:, i], color=colors[i], lw=0.8, marker=marker, label=labels[i] if n_layers <= 12 else None)
    bad = np.flatnonzero(~np.isfinite(layer_norms).all(axis=1))
    if len(bad):
        ax.axvline(steps[bad[0]], color="red", ls="--", lw=1, label="first NaN/Inf/none")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"log10 {quantity}")
    ax.set_title(f"per layer (dark = input side) {title}".strip())
    if n_layers <= 12 or len(bad):
        ax.legend(fontsize=7, ncol=2)
    else:
        mappable = plt.cm.ScalarMappable(cmap="plasma", norm=plt.Normalize(0, (n_layers - 1) / 0.9))
        fig.colorbar(mappable, ax=ax, label="layer depth index")
    for row, (kind, psteps, pvalues) in enumerate(extra, start=1):
        _panel(axes[row, 0], kind, np.asarray(psteps), np.asarray(pvalues, dtype=np.float64), colors, labels, title)
    fig.tight_layout()
    paths.append(out_dir / "gradient_flow_lines.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


PANELS = {
    "signal": ("log10 back-propagated signal ‖∂L/∂z‖ (RMS)", True),
    "dead": ("dead ReLU fraction (zero for the whole batch)", False),
}


def _panel(ax, kind: str, steps: np.ndarray, values: np.ndarray, colors, labels: list[str], title: str) -> None:  # noqa: ANN001
    """One instrument's per-layer lines (same colours as the gradient panel: dark = input side)."""
    ylabel, logarithmic = PANELS[kind]
    shown = _log10(values) if logarithmic else values
    marker = "." if len(steps) <= 100 else None
    for i in range(shown.shape[1]):
        if np.isfinite(shown[:, i]).any():
            ax.plot(steps, shown[:, i], color=colors[i], lw=0.8, marker=marker)
    if not logarithmic:
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(f"{kind} per layer (dark = input side) {title}".strip(), fontsize=9)
