"""What the monitor leaves when training ends: the final event counts and `health.*` tags, `events.jsonl`,
the timeline (`health/steps_<state>`, `health/frac_<state>`, `health/onsets_<kind>`, `health/timeline.json`),
the consolidated per-step record (`health/record.parquet`) and the gradient-flow plots.

Event counts are logged only for kinds that fired, so a run with no event shows no empty event charts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src.monitor.plots import save_gradient_flow
from src.monitor.record import consolidate
from src.monitor.state import MonitorState


def write_run_end(
    sink: Any, state: MonitorState, parts: Path, labels: list[str] | None, record: bool, plots: bool,
    panels: Callable[[], dict[str, Any]], tags: dict[str, str] | None = None,
) -> list[str]:
    """Everything above into `sink`; `labels` None when no layer was ever seen (nothing per layer to write);
    `panels` makes the figure's extra panels (signal, dead fraction) only when a figure is drawn; `tags`: the
    run-end `health.*` tags (the event log's by default). Returns the plots' artifact paths."""
    step = max(state.last_step, 0)
    log = state.log
    rows = [(f"events/{k}", float(v), step) for k, v in log.counts.items() if v]
    if state.timeline.judged:
        rows += [(key, value, step) for key, value in state.timeline.metrics().items()]
    sink.log_rows(rows, tags if tags is not None else log.tags())
    sink.log_text(log.jsonl(), "events.jsonl")
    if state.timeline.judged:
        sink.log_text(state.timeline.to_json(), "health/timeline.json")
    plotted: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        if record and labels is not None:
            consolidate_record(sink, parts, state.generation, Path(tmp))
        steps, values = state.history.arrays()
        if plots and len(steps) and labels:
            for path in save_gradient_flow(steps, values, labels, Path(tmp) / "plots", panels=panels()):
                sink.log_artifact(str(path), "plots")
                plotted.append(f"plots/{path.name}")
    return plotted


def consolidate_record(sink: Any, parts: Path, generation: int, tmp: Path) -> None:
    """All parts of the run (every generation's, downloaded when the sink can) into `health/record.parquet`."""
    download = getattr(sink, "download_artifacts", None)
    if download is not None and generation > 0:
        parts = Path(download("health/parts", str(tmp)))
    record = consolidate(parts, tmp / "record.parquet")
    if record is not None:
        sink.log_artifact(str(record), "health")
