"""What reaches MLflow and when: the logging cadence (where Lightning logs `train/loss`) plus the last step; the
per-step record under `health/`, value by value against direct norms over flushes of several rows; short runs."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from src.monitor.record import download_record
from src.report.plots import flow_snapshots, layer_keys
from tests import gradient_probes
from tests.conftest import FAST
from tests.mlflow_reads import only_run

SMALL_MLP = ["model=mlp", "model.depth=3", "model.width=16", "data=synthetic", "data.num_samples=512",
             "data.in_channels=1", "data.image_size=8", "reg=elasticnet", "reg.elasticnet.strength=0.01"]
EIGHT_STEPS = [o for o in FAST if not o.startswith(("trainer.limit_train_batches", "trainer.log_every_n_steps"))]


def history(client, run_id: str, key: str) -> dict[int, float]:  # noqa: ANN001
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_mlflow_gets_the_logging_cadence_and_the_record_every_step(run_cli, mlflow_client, tmp_path) -> None:
    gradient_probes.RECORDS.clear()
    code = run_cli(*SMALL_MLP, *EIGHT_STEPS, "trainer.limit_train_batches=8", "trainer.log_every_n_steps=3",
                   "+callbacks.recorder._target_=tests.gradient_probes.GradNormRecorder")
    assert code == 0
    records = gradient_probes.RECORDS
    assert [r["step"] for r in records] == list(range(8))
    run = only_run(mlflow_client)
    run_id = run.info.run_id
    labels = [f"{i:02d}.{name}" for i, name in enumerate(records[0]["layers"])]
    logged = {2, 5, 7}  # (step + 1) % 3 == 0, and the last step
    assert set(history(mlflow_client, run_id, "train/loss")) >= {2, 5}  # where Lightning logs
    for key in ("grad/global_norm", "grad/global_rel", "grad_penalty/global_norm", *(f"{p}/{label}" for label in labels
                for p in ("grad_norm", "grad_rms", "grad_rel", "weight_norm", "grad_penalty"))):
        assert set(history(mlflow_client, run_id, key)) == logged, key
    record = download_record(mlflow_client, run_id, tempfile.mkdtemp(dir=tmp_path))
    assert record["step"].tolist() == list(range(8)) and record.attrs["layers"] == labels
    for r in records:  # every step, flushed three rows at a time, equals the direct norms of that step
        row = record.iloc[r["step"]]
        for i, label in enumerate(labels):
            assert row[f"grad_norm/{label}"] == pytest.approx(r["grad"][i], rel=1e-5)
            assert row[f"weight_norm/{label}"] == pytest.approx(r["weight"][i], rel=1e-5)
            assert row[f"grad_rel/{label}"] == pytest.approx(r["grad"][i] / r["weight"][i], rel=1e-5)
        assert row["grad/global_norm"] == pytest.approx(r["global"], rel=1e-5)
        if r["step"] in logged:
            assert history(mlflow_client, run_id, f"grad_norm/{labels[0]}")[r["step"]] == pytest.approx(r["grad"][0],
                                                                                                       rel=1e-5)
    sizes = np.array(record.attrs["layer_sizes"], dtype=float)
    raw = record[[f"grad_norm/{label}" for label in labels]].to_numpy()
    rms = record[[f"grad_rms/{label}" for label in labels]].to_numpy()
    np.testing.assert_allclose(rms, raw / np.sqrt(sizes), rtol=1e-5)
    assert (record["grad_penalty/global_norm"] > 0).all() and not record["skipped"].any()
    assert run.data.tags["health.verdict"] == "inconclusive"  # no event; 8 steps at chance, too few for plateau
    assert {a.path for a in mlflow_client.list_artifacts(run_id, "health")} >= {"health/record.parquet", "health/parts"}
    keys = layer_keys(run.data.metrics)  # the report reads the record through the same reader
    assert keys == [f"grad_rel/{label}" for label in labels]
    snaps = flow_snapshots(mlflow_client, run_id, keys)
    assert sorted(snaps) == [0, 2, 5, 7] and snaps[0] == pytest.approx(record.iloc[0][keys].tolist())  # 0: no metric


def test_a_run_shorter_than_the_cadence_still_logs_its_layers(run_cli, mlflow_client) -> None:
    assert run_cli(*SMALL_MLP, *EIGHT_STEPS, "trainer.limit_train_batches=3", "trainer.log_every_n_steps=10") == 0
    run = only_run(mlflow_client)
    per_layer = [k for k in run.data.metrics if k.startswith("grad_norm/")]
    assert len(per_layer) == 4
    assert all(set(history(mlflow_client, run.info.run_id, k)) == {2} for k in per_layer)  # its last step
