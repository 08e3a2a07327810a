"""The benchmark's import figures: the packages a run does not use before its first step are always reported,
however small, and the docs block says where operator counts measured apart come from."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import default_run, docs
from bench.table import default_run_lines

# `python -X importtime` lines (self µs | cumulative µs | name, indented by depth), children before parents
IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:    500000 |     500000 |     torch._C
import time:   1000000 |    1500000 |   torch
import time:      2000 |       2000 |       scipy.signal._windows
import time:      1000 |       3000 |     scipy.signal
import time:    100000 |     103000 |   torchmetrics
import time:     50000 |    1653000 | pytorch_lightning
import time:    400000 |     400000 |   pandas
import time:    600000 |    1000000 | mlflow
"""


@pytest.fixture
def fake_importtime(monkeypatch: pytest.MonkeyPatch) -> None:
    done = SimpleNamespace(returncode=0, stdout="", stderr=IMPORTTIME)
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: done)


def test_unused_packages_are_reported_even_when_not_among_the_largest(fake_importtime: None) -> None:
    found = default_run.import_times(Path("."), {}, (), top=2)
    assert found["total_s"] == pytest.approx(2.653)
    assert list(found)[1:3] == ["pytorch_lightning", "torch"]  # the `top` largest, cumulative
    assert found["scipy"] == pytest.approx(0.003) and found["pandas"] == pytest.approx(0.4)
    assert "mlflow" not in found and "matplotlib" not in found  # third largest; not imported at all


def test_the_table_names_the_unused_imports_apart(fake_importtime: None) -> None:
    imports = {"run": default_run.import_times(Path("."), {}, (), top=2)}
    process = {"wall_s": 1.0, "cpu_s": 1.0, "peak_rss_mib": 1.0, "walls_s": [1.0]}
    lines = default_run_lines({"bare": process, "run": process, "imports": imports}, ())
    line = next(x for x in lines if "imports of the default run" in x)
    largest, unused = line.split("; imported by libraries, unused before the first step: ")
    assert "pytorch_lightning 1.65" in largest and "scipy" not in largest
    assert unused == "scipy 0.00, pandas 0.40"


def test_operator_counts_from_their_own_run_are_labelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "docs" / "performance.md"
    doc.parent.mkdir()
    doc.write_text(f"before\n{docs.BEGIN}\nold\n{docs.END}\nafter\n")
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    counts = {"monitor": {"ops": 10, "views": 1}, "monitor+all": {"ops": 15, "views": 1}}
    steps = {"bare": 1.0, "module": 2.0}
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"context": {"uptime_start": "s", "uptime_end": "e"},
                                 "steps": {"after": [steps], "before": [steps]}}))
    ops = tmp_path / "ops.json"
    ops.write_text(json.dumps({"ops": {"after": counts, "before": counts}}))
    docs.main([str(bench), str(ops)])
    text = doc.read_text()
    assert "| monitor+all | 5 | 0 | 5 | 0 |" in text and "counted in a run of their own, `ops.json`" in text
    docs.main([str(bench)])  # no operator counts: neither the table nor the note
    assert "monitor+all | 5" not in doc.read_text() and "counted in a run of their own" not in doc.read_text()
    assert doc.read_text().startswith("before\n") and doc.read_text().endswith("after\n")
