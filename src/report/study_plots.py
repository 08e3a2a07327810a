"""The study's figures (PNG, matplotlib's Agg backend).

- `dose_response`: one column per regularizer family (L1, L2 penalty, L2 decoupled, Elastic Net,
  Dropout), dose on the x axis (λ on a log scale, `none` drawn at a tenth of the smallest λ; dropout's p
  linear, `none` at p = 0), one line per condition; top row final test accuracy (mean, 95% t-interval),
  bottom row the fraction of seeds whose verdict is not `healthy` (Wilson interval);
- `verdict_heatmap`: conditions x arms, each cell coloured by its most frequent verdict and labelled
  with that verdict's count over the seeds (`3/3`); grey where the arm was not run on the condition.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from src.report import intervals as iv  # noqa: E402
from src.report.study import FAMILIES, HEALTHY, Cell, arm_family, arm_order  # noqa: E402

VERDICT_COLOURS = {HEALTHY: "#4daf4a", "stalled": "#ffb000", "vanishing": "#377eb8", "exploding": "#e41a1c",
                   "nonfinite": "#7b0000", "divergence": "#984ea3", "dead_units": "#a65628", "unstable": "#f781bf"}
OTHER_COLOUR, ABSENT_COLOUR = "#999999", "#eeeeee"


def _errorbar(ax: plt.Axes, xs: list[float], ints: list[iv.Interval], label: str) -> None:
    ys = [i.estimate for i in ints]
    lo = [i.estimate - (i.lo if i.lo is not None else i.estimate) for i in ints]
    hi = [(i.hi if i.hi is not None else i.estimate) - i.estimate for i in ints]
    ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", ms=3, capsize=2, lw=1, label=label)


def dose_response(cells: list[Cell], path: Path) -> bool:
    """The dose-response figure; False (nothing written) when no condition has a dosed arm."""
    by_condition: dict[str, dict[str, Cell]] = {}
    for c in cells:
        by_condition.setdefault(c.condition, {})[c.arm] = c
    families = [f for f in FAMILIES if any(arm_family(c.arm)[0] == f for c in cells)]
    if not families:
        return False
    fig, axes = plt.subplots(2, len(families), figsize=(3.4 * len(families), 6.2), squeeze=False, sharey="row")
    for col, family in enumerate(families):
        top, bottom = axes[0][col], axes[1][col]
        doses = [d for c in cells if (f := arm_family(c.arm))[0] == family and (d := f[1]) is not None]
        floor = 0.0 if family == "dropout" else min(doses) / 10  # where `none` is drawn
        for k, (condition, arms) in enumerate(by_condition.items()):
            dosed = sorted((arm_family(a)[1], c) for a, c in arms.items() if arm_family(a)[0] == family)
            if not dosed:
                continue
            if "none" in arms:
                dosed = [(floor, arms["none"]), *dosed]
            # a small offset per condition, so that lines on the same values stay apart
            xs = [d + 0.006 * k if family == "dropout" else d * 10 ** (0.03 * k) for d, _ in dosed]
            acc = [(x, c.summary.get("test/acc")) for x, c in zip(xs, (c for _, c in dosed), strict=True)]
            acc = [(x, i) for x, i in acc if i is not None]
            if acc:
                _errorbar(top, [x for x, _ in acc], [i for _, i in acc], condition)
            bad = [(x, iv.wilson(c.unhealthy, sum(c.verdicts.values()))) for x, c in dosed]
            bad = [(x, i) for x, i in bad if i is not None]
            if bad:
                _errorbar(bottom, [x for x, _ in bad], [i for _, i in bad], condition)
        for ax in (top, bottom):
            if family != "dropout":
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        top.set_title(FAMILIES[family], fontsize=9)
        bottom.set_xlabel("dropout p (none at 0)" if family == "dropout" else "λ (none at a tenth of the smallest)",
                          fontsize=8)
    axes[0][0].set_ylabel("final test accuracy (95% t)")
    axes[1][0].set_ylabel("fraction of seeds not healthy (95% Wilson)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, max(1, len(labels))), fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def verdict_heatmap(cells: list[Cell], path: Path) -> bool:
    """The condition x arm verdict map; False when there are no cells."""
    if not cells:
        return False
    conditions = sorted({c.condition for c in cells})
    arms = sorted({c.arm for c in cells}, key=arm_order)
    kinds = list(dict.fromkeys([*VERDICT_COLOURS, *sorted({k for c in cells for k in c.verdicts})]))
    colours = [VERDICT_COLOURS.get(k, OTHER_COLOUR) for k in kinds] + [ABSENT_COLOUR]
    grid = [[len(kinds)] * len(arms) for _ in conditions]
    fig, ax = plt.subplots(figsize=(0.55 * len(arms) + 2.5, 0.45 * len(conditions) + 1.8))
    for c in cells:
        if not c.verdicts:
            continue
        r, k = conditions.index(c.condition), arms.index(c.arm)
        kind, n = c.verdicts.most_common(1)[0]
        grid[r][k] = kinds.index(kind)
        ax.text(k, r, f"{n}/{sum(c.verdicts.values())}", ha="center", va="center", fontsize=6,
                color="white" if kind not in (HEALTHY, "stalled") else "black")
    ax.imshow(grid, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(kinds) + 0.5, aspect="auto")
    ax.set_xticks(range(len(arms)), arms, rotation=70, fontsize=7)
    ax.set_yticks(range(len(conditions)), conditions, fontsize=7)
    used = sorted({k for c in cells for k in c.verdicts}, key=kinds.index)
    ax.legend(handles=[Patch(color=VERDICT_COLOURS.get(k, OTHER_COLOUR), label=k) for k in used],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, title="most frequent verdict", title_fontsize=7)
    ax.set_title("verdict per condition x arm (count of seeds with the most frequent verdict)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
