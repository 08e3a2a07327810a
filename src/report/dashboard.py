"""The gradient-health dashboard of a sweep: one self-contained interactive HTML page (Plotly).

The MLflow UI shows one chart per metric and per layer on linear axes; this page shows the sweep at
once, and opens in the UI's artifact view of the sweep's parent run (`dashboard/gradient_health.html`)
or in any browser without a network (Plotly's JavaScript is inside the file):

1. a verdict/timeline strip: one bar per run over its optimizer steps, coloured by health state;
2. layer x run heat maps of the data gradient's relative norm ‖g‖/‖θ‖ and of the back-propagated
   signal ‖∂L/∂z‖ at the last logged step, on a log10 colour scale, one per model;
3. depth profiles on a log axis: one line per configuration (a report row), the geometric mean
   over its seeds, with the seeds' range as a band;
4. the report's table with its intervals (`src/report/table.py`).

Made when a sweep ends (`src/tracking/sweeps.py`) and by `scripts/report.py`.
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative

from src.report.dashboard_data import (
    LAYER_PREFIXES,
    geometric_profile,
    layer_keys,
    layer_label,
    layer_values,
    segments,
)
from src.report.table import Row, table_cells, table_head

FILE_NAME = "gradient_health.html"
ARTIFACT_DIR = "dashboard"  # on the sweep's parent run
STATE_COLOURS = {"healthy": "#2ca02c", "vanishing": "#1f77b4", "exploding": "#d62728", "nonfinite": "#000000",
                 "divergence": "#8c564b", "stalled": "#9467bd", "dead_units": "#7f7f7f", "unstable": "#ff7f0e"}
ROW_PX = 24  # height of one run in the heat maps
STRIP_PX = 16  # and in the timeline strip


def colour(state: str) -> str:
    return STATE_COLOURS.get(state, qualitative.Pastel[sum(map(ord, state)) % len(qualitative.Pastel)])


def run_labels(rows: list[Row]) -> list[tuple[Any, str]]:
    """(run, label) in table order; labels unique (run names are unique within a sweep)."""
    return [(run, run.name) for row in rows for run in row.runs]


def timeline_strip(mlflow_client: Any, rows: list[Row]) -> go.Figure:
    """One horizontal bar per run over its steps, one colour per state."""
    fig, shown = go.Figure(), set()
    runs = run_labels(rows)
    for run, label in runs:
        for seg in segments(mlflow_client, run):
            note = " (verdict only: no health/timeline.json)" if seg.from_verdict else ""
            fig.add_trace(go.Bar(
                y=[label], x=[seg.end_step - seg.start_step + 1], base=[seg.start_step], orientation="h",
                marker={"color": colour(seg.state), "pattern": {"shape": "/" if seg.from_verdict else ""}},
                name=seg.state, legendgroup=seg.state, showlegend=seg.state not in shown,
                hovertemplate=f"{html.escape(label)}<br>{seg.state}: steps {seg.start_step}-{seg.end_step}{note}"
                              "<extra></extra>"))
            shown.add(seg.state)
    labels = [label for _, label in runs]
    fig.update_layout(barmode="overlay", title="Health state over training (one bar per run; hatched: verdict only)",
                      xaxis_title="optimizer step", height=160 + STRIP_PX * max(len(runs), 1),
                      yaxis={"autorange": "reversed", "type": "category", "categoryorder": "array",
                             "categoryarray": labels, "tickmode": "array", "tickvals": labels},
                      margin={"l": 10})
    return fig


def heat_map(rows: list[Row], prefix: str, model: str) -> go.Figure | None:
    """Layer x run, log10 colour; None when no run of this model logged the prefix."""
    runs = [(run, label) for run, label in run_labels(rows) if run.model == model]
    keys = layer_keys([run for run, _ in runs], prefix)
    if not keys:
        return None
    values = [layer_values(run, keys) for run, _ in runs]
    z = [[None if v is None else math.log10(v) for v in line] for line in values]
    text = [["not logged" if v is None else f"{v:.3g}" for v in line] for line in values]
    labels = [label for _, label in runs]
    fig = go.Figure(go.Heatmap(
        z=z, x=[layer_label(k) for k in keys], y=labels, text=text, colorscale="Viridis",
        colorbar={"title": "log10"}, hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>"))
    fig.update_layout(title=f"{model}: {LAYER_PREFIXES[prefix]} per layer at the last logged step (log10)",
                      xaxis={"title": "layer (input → output)", "tickangle": -60},
                      yaxis={"autorange": "reversed", "tickmode": "array", "tickvals": labels},
                      height=220 + ROW_PX * len(runs), margin={"l": 10})
    return fig


def depth_profile(rows: list[Row], prefix: str, model: str) -> go.Figure | None:
    """One line per configuration (geometric mean over seeds), the seeds' range as a band; log axis."""
    mine = [r for r in rows if r.model == model]
    keys = layer_keys([run for r in mine for run in r.runs], prefix)
    if not keys:
        return None
    x = [layer_label(k) for k in keys]
    fig = go.Figure()
    for i, row in enumerate(mine):
        mean, low, high = geometric_profile([layer_values(run, keys) for run in row.runs])
        if all(v is None for v in mean):
            continue
        hue = qualitative.Plotly[i % len(qualitative.Plotly)]
        name = f"{row.label} (n={len(row.runs)})"
        fig.add_trace(go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself", fillcolor=hue, opacity=0.18,
                                 line={"width": 0}, hoverinfo="skip", legendgroup=name, showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=name, legendgroup=name,
                                 line={"color": hue}, hovertemplate=f"{html.escape(name)}<br>%{{x}}: %{{y:.3g}}"
                                                                    "<extra></extra>"))
    fig.update_layout(title=f"{model}: depth profile of the {LAYER_PREFIXES[prefix]} (mean over seeds, band: "
                            "their range)", xaxis={"title": "layer (input → output)", "tickangle": -60},
                      yaxis={"type": "log", "title": LAYER_PREFIXES[prefix]}, height=480)
    return fig


def table_figure(rows: list[Row]) -> go.Figure:
    """The report's table (intervals included) as an interactive table."""
    head, cells = table_head(rows), table_cells(rows)
    columns = [list(col) for col in zip(*cells, strict=True)] if cells else [[] for _ in head]
    fig = go.Figure(go.Table(header={"values": head, "fill_color": "#e8e8e8", "align": "left"},
                             cells={"values": columns, "align": "left"}))
    fig.update_layout(title="The report's table: one row per configuration, seeds folded in",
                      height=260 + 60 * max(len(rows), 1), margin={"l": 10, "r": 10, "t": 60})
    return fig


def figures(mlflow_client: Any, rows: list[Row]) -> list[go.Figure]:
    """Every figure of the page, in reading order."""
    models = list(dict.fromkeys(r.model for r in rows))
    found = [timeline_strip(mlflow_client, rows)]
    for prefix in LAYER_PREFIXES:
        found += [f for model in models if (f := heat_map(rows, prefix, model)) is not None]
    for prefix in LAYER_PREFIXES:
        found += [f for model in models if (f := depth_profile(rows, prefix, model)) is not None]
    return [*found, table_figure(rows)]


def write_dashboard(mlflow_client: Any, rows: list[Row], title: str, path: Path) -> Path:
    """The page into `path` (Plotly's JavaScript inlined once: it opens without a network)."""
    parts = [fig.to_html(full_html=False, include_plotlyjs=i == 0, config={"displaylogo": False})
             for i, fig in enumerate(figures(mlflow_client, rows))]
    runs = sum(len(r.runs) for r in rows)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            "<body style='font-family: sans-serif; margin: 12px'>"
            f"<h2>{html.escape(title)}</h2><p>{runs} runs in {len(rows)} configurations · generated "
            f"{datetime.now():%Y-%m-%d %H:%M}. Hover for values; click a legend entry to hide it.</p>"
            + "".join(parts) + "</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def log_dashboard(mlflow_client: Any, parent_run_id: str, path: Path) -> str:
    """Log the page on the sweep's parent run; return its artifact path."""
    mlflow_client.log_artifact(parent_run_id, str(path), ARTIFACT_DIR)
    return f"{ARTIFACT_DIR}/{path.name}"
