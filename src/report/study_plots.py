"""The study's figures (PNG, matplotlib's Agg backend).

- `dose_response`: one column per regularizer family (L1, L2 penalty, L2 decoupled, Elastic Net,
  Dropout), the dose actually run on the x axis: for L2 and Elastic Net the cumulative decay 2ηλT/(1−β)
  of the cell's runs (`doses.py`; λ where the decay is not comparable, e.g. penalty with Adam), for L1 λ,
  all on a log scale with `none` drawn at a tenth of the smallest dose; dropout's p linear, `none` at
  p = 0; one line per condition (and per condition and rescue for `<rescue>+<arm>` arms, whose reference is
  the rescue alone); top row final test accuracy (mean, 95% logit interval: inside [0, 1]), bottom row the
  fraction of seeds that failed, i.e. had an event verdict (Wilson interval);
- `verdict_heatmap`: conditions x arms, each cell a bar of the time its seeds spent in each health state
  (mean fraction of judged steps, `health/frac_<state>`), labelled with the most frequent verdict's count
  over the seeds (`3/3`) and `<30` where every seed's verdict was fixed before step 30; grey where the arm
  was not run on the condition.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from src.report import intervals as iv  # noqa: E402
from src.report.states import FIXED_BEFORE  # noqa: E402
from src.report.study import FAMILIES, HEALTHY, Cell, arm_family, arm_order  # noqa: E402
from src.report.study_arms import split_arm  # noqa: E402
from src.report.study_read import STATES  # noqa: E402

VERDICT_COLOURS = {HEALTHY: "#4daf4a", "stalled": "#ffb000", "vanishing": "#377eb8", "exploding": "#e41a1c",
                   "nonfinite": "#7b0000", "divergence": "#984ea3", "dead_units": "#a65628", "unstable": "#f781bf",
                   "zeroed_weights": "#666600", "plateau": "#c7e9c0", "inconclusive": "#bbbbbb"}
DECAY_FAMILIES = ("l2", "l2dec", "en")  # drawn against their cumulative decay when it is comparable
OTHER_COLOUR, ABSENT_COLOUR = "#999999", "#eeeeee"


def _errorbar(ax: plt.Axes, xs: list[float], ints: list[iv.Interval], label: str) -> None:
    ys = [i.estimate for i in ints]
    # a logit interval is of the mean logit: a skewed sample's arithmetic mean may lie just outside it
    lo = [max(0.0, i.estimate - (i.lo if i.lo is not None else i.estimate)) for i in ints]
    hi = [max(0.0, (i.hi if i.hi is not None else i.estimate) - i.estimate) for i in ints]
    ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", ms=3, capsize=2, lw=1, label=label)


def failed(cell: Cell) -> int:
    """Seeds with an event verdict (not healthy, not inconclusive)."""
    return sum(n for kind, n in cell.verdicts.items() if kind not in (HEALTHY, "inconclusive"))


def dose(cell: Cell) -> float | None:
    """The x of a cell: its mean cumulative decay for L2-like arms (when every run's is comparable), else
    the arm's own dose (λ or p)."""
    family, named = arm_family(cell.arm)
    decays = [d.decay for d in cell.doses if d.comparable and d.decay is not None]
    if family in DECAY_FAMILIES and decays and len(decays) == len(cell.doses):
        return sum(decays) / len(decays)
    return named


def dose_response(cells: list[Cell], path: Path) -> bool:
    """The dose-response figure; False (nothing written) when no condition has a dosed arm."""
    by_condition: dict[str, dict[str, Cell]] = {}
    for c in cells:  # a line per condition, and per condition and rescue for the arms on top of a rescue
        rescue = split_arm(c.arm)[0]
        line = by_condition.setdefault(c.condition if rescue is None else f"{c.condition} on {rescue}", {})
        line[c.arm] = c
        if rescue is not None and (c.condition, rescue) in {(x.condition, x.arm) for x in cells}:
            line["none"] = next(x for x in cells if (x.condition, x.arm) == (c.condition, rescue))
    families = [f for f in FAMILIES if any(arm_family(c.arm)[0] == f for c in cells)]
    if not families:
        return False
    fig, axes = plt.subplots(2, len(families), figsize=(max(5.0, 3.6 * len(families)), 6.6), squeeze=False,
                             sharey="row")
    for col, family in enumerate(families):
        top, bottom = axes[0][col], axes[1][col]
        doses = [d for c in cells if arm_family(c.arm)[0] == family and (d := dose(c)) is not None and d > 0]
        if not doses:
            continue
        floor = 0.0 if family == "dropout" else min(doses) / 10  # where `none` is drawn
        for k, (condition, arms) in enumerate(by_condition.items()):
            dosed = sorted(((x, c) for a, c in arms.items() if arm_family(a)[0] == family
                            and (x := dose(c)) is not None and x > 0), key=lambda xc: xc[0])
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
            bad = [(x, iv.wilson(failed(c), c.judged)) for x, c in dosed]
            bad = [(x, i) for x, i in bad if i is not None]
            if bad:
                _errorbar(bottom, [x for x, _ in bad], [i for _, i in bad], condition)
        for ax in (top, bottom):
            if family != "dropout":
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        top.set_title(FAMILIES[family], fontsize=9)
        x_label = {"dropout": "dropout p\n(reference at 0)", "l1": "λ\n(reference at a tenth of the smallest)"}.get(
            family, "cumulative decay 2ηλT/(1−β)\n(reference at a tenth of the smallest)")
        bottom.set_xlabel(x_label, fontsize=7)
    axes[0][0].set_ylabel("final test accuracy\n(95% logit)", fontsize=8)
    axes[1][0].set_ylabel("fraction of seeds failed\n(event verdict, 95% Wilson)", fontsize=8)
    legend = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(4, max(1, len(legend))), fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def verdict_heatmap(cells: list[Cell], path: Path) -> bool:
    """The condition x arm map of time in each state; False when there are no cells."""
    if not cells:
        return False
    conditions = sorted({c.condition for c in cells})
    arms = sorted({c.arm for c in cells}, key=arm_order)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.75 * len(arms) + 3.0), 0.5 * len(conditions) + 2.4))
    ax.add_patch(Rectangle((-0.5, -0.5), len(arms), len(conditions), color=ABSENT_COLOUR, zorder=0))
    used: set[str] = set()
    for c in cells:
        r, k = conditions.index(c.condition), arms.index(c.arm)
        left = k - 0.45
        shares = c.time.mean if c.time and c.time.n else ({c.verdicts.most_common(1)[0][0]: 1.0} if c.verdicts else {})
        for state in [*STATES, *sorted(set(shares) - set(STATES))]:
            width = 0.9 * shares.get(state, 0.0)
            if width > 0:
                ax.add_patch(Rectangle((left, r - 0.4), width, 0.8, color=VERDICT_COLOURS.get(state, OTHER_COLOUR)))
                used.add(state)
                left += width
        if c.verdicts:
            kind, n = c.verdicts.most_common(1)[0]
            label = f"{kind[:8]}\n{n}/{sum(c.verdicts.values())}" + ("\n<30" if c.fixed_early else "")
            ax.text(k, r, label, ha="center", va="center", fontsize=5, color="black",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "alpha": 0.6, "lw": 0})
    ax.set_xlim(-0.5, len(arms) - 0.5)
    ax.set_ylim(len(conditions) - 0.5, -0.5)
    ax.set_xticks(range(len(arms)), arms, rotation=70, fontsize=7)
    ax.set_yticks(range(len(conditions)), conditions, fontsize=7)
    order = [*STATES, *sorted(used - set(STATES))]
    ax.legend(handles=[Patch(color=VERDICT_COLOURS.get(k, OTHER_COLOUR), label=k) for k in order if k in used],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, title="time in state", title_fontsize=7)
    ax.set_title("time in each health state per condition x arm\n(mean fraction of judged steps over seeds); label: "
                 f"most frequent verdict,\nits count of seeds, <{FIXED_BEFORE}: every seed's verdict fixed before step "
                 f"{FIXED_BEFORE}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
