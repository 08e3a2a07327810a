"""What a replay found, as `forensics/report.json`, `forensics/batch.pt`, the `health.forensics` tag and
the one line of the run's printed summary.

`skip_indices` are the examples a resume with `skip_bad_batches=true` leaves out: those whose rows
were non-finite at the step and phase found (forward output, per-example loss, or the gradient
leaving the module where backward broke), else the whole batch of that step (an update that
overflowed is the batch's doing, not one example's); none when nothing non-finite was reproduced.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from src.monitor.forensics.replay import Finding
from src.monitor.sink import RunSink

REPORT = "forensics/report.json"
BATCH = "forensics/batch.pt"


def jsonable(value: Any) -> Any:
    """Non-finite floats as strings ("nan", "inf"), which JSON lacks; containers recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def dumps(report: dict[str, Any]) -> str:
    """JSON with one top-level field a line and one module a line of `activations`: short enough to read."""
    lines = []
    for key, value in report.items():
        if key == "activations" and value:
            inner = ",\n".join(f"    {json.dumps(item)}" for item in value)
            lines.append(f'  "{key}": [\n{inner}\n  ]')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def build_report(event: dict[str, Any], finding: Finding | None, rank: int, context: dict[str, Any],
                 indices: list[int] | None, reproduced: bool, note: str) -> dict[str, Any]:
    """The report's fields; `context`: lr, replay range and losses, world size, snapshot bytes."""
    report: dict[str, Any] = {"reproduced": reproduced, "note": note, "event": event}
    if finding is not None:
        bad = [indices[i] for i in finding.example_rows] if indices is not None else []
        skip = (bad or indices or []) if finding.phase != "update" else (indices or [])
        report.update(step=finding.step, phase=finding.phase, module=finding.module, module_type=finding.module_type,
                      autograd_op=finding.autograd_op, first_nonfinite_op=finding.first_nonfinite_op, rank=rank,
                      micro_batch=finding.micro_batch,
                      lr=context["lr"], loss=finding.loss, indices=indices, nonfinite_indices=bad,
                      nonfinite_params=finding.nonfinite_params[:20], skip_indices=sorted(set(skip)))
    else:
        report.update(step=event["step"], phase=None, module=None, module_type=None, autograd_op=None, rank=rank,
                      lr=context.get("lr"), indices=indices, nonfinite_indices=[], skip_indices=[])
    report["activations"] = finding.activations if finding is not None else context.get("activations", [])
    report["replay"] = {k: context[k] for k in ("from_step", "to_step", "losses", "world_size") if k in context}
    report["snapshot_bytes"] = context.get("snapshot_bytes")
    return jsonable(report)


def one_line(report: dict[str, Any]) -> str:
    """The `health.forensics` tag and the printed summary's line."""
    event = report["event"]
    if not report["reproduced"] or report["phase"] is None:
        what = "reproduced, no NaN/Inf" if report["reproduced"] else "NOT reproduced"
        return f"{event['kind']} at step {event['step']}: replay {what} ({report['note']}); see {REPORT}"
    where = f" in {report['module']}" + (f" ({report['module_type']})" if report.get("module_type") else "")
    op = f", op {report['autograd_op']}" if report.get("autograd_op") else ""
    examples = report["nonfinite_indices"] or report["indices"] or []
    shown = ",".join(str(i) for i in examples[:8]) + (",..." if len(examples) > 8 else "")
    return (f"first non-finite at step {report['step']}, {report['phase']}{where}{op}, lr {report['lr']}, "
            f"examples [{shown}]; see {REPORT}")


def write(sink: RunSink, report: dict[str, Any], batch: dict[str, Any] | None) -> None:
    """The report, the batch (inputs, targets, indices) and the tag, into the run."""
    sink.log_text(dumps(report), REPORT)
    if batch is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "batch.pt"
            torch.save(batch, path)
            sink.log_artifact(str(path), "forensics")
    sink.log_rows([], {"health.forensics": one_line(report)})
