"""An unreachable tracking server stops the job at the reachability probe, naming the URI, before any
training; credentials and secrets never reach params, tags, artifacts or the printed commands.

What is checked is the event (the probe's refusal, nothing trained), not a stopwatch: the ceilings
below are generous (a loaded runner must not fail them) and only tell seconds from MLflow's own
retries, which go on for minutes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.paths import PROJECT_ROOT
from src.tracking.reachability import TrackingUnavailable, ensure_reachable
from src.tracking.redaction import redact_uri, scrub
from src.tracking.store import ui_command
from tests.mlflow_reads import only_run


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


CEILING_S = 90  # far above the probe's few seconds, far below MLflow's minutes of retries


def test_refused_server_is_reported_by_the_real_cli(tmp_path: Path, data_dir: Path) -> None:
    uri = f"http://alice:hunter2@127.0.0.1:{closed_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.run(
        [sys.executable, "-m", "src.train", f"paths.log_dir={tmp_path}", f"paths.data_dir={data_dir}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=CEILING_S,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]  # a user error: the message alone, no traceback
    assert "Traceback" not in out
    assert f"http://***@127.0.0.1:{uri.rsplit(':', 1)[1]}" in out and "does not answer" in out, out[-2000:]
    assert "hunter2" not in out
    assert "Epoch" not in out and not list(tmp_path.glob("runs/*/checkpoints")), "nothing trained"


def test_silent_server_is_reported_after_the_probes_timeout(run_cli, capfd, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts the connection and never answers: the probe's timeout bounds the wait."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # the kernel completes handshakes; nobody ever reads or replies
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("GRADREG_TRACKING_TIMEOUT", "2")
        start = time.monotonic()
        code = run_cli("data=synthetic")
        elapsed = time.monotonic() - start
    out = "".join(capfd.readouterr())
    assert code == 2, out[-2000:]
    assert f"MLflow tracking server at {uri} does not answer" in out
    assert "Epoch" not in out, "nothing trained"
    assert elapsed < CEILING_S, f"exit {code} after {elapsed:.1f} s: the probe's 2 s timeout did not bound the wait"


def test_unwritable_sqlite_store_is_refused() -> None:
    with pytest.raises(TrackingUnavailable, match="cannot be written"):
        ensure_reachable(f"sqlite:///{Path(__file__).resolve()}/mlflow.db")  # a folder inside a file


@pytest.mark.parametrize(("text", "expected"), [
    ("http://user:pass@host:5000/path", "http://***@host:5000/path"),
    ("https://token@example.org", "https://***@example.org"),
    ("postgresql://u:p@db/mlflow", "postgresql://***@db/mlflow"),
    ("sqlite:///tmp/mlflow.db", "sqlite:///tmp/mlflow.db"),
])
def test_redact_uri(text: str, expected: str) -> None:
    assert redact_uri(text) == expected


def test_scrub_hides_secret_keys_env_secrets_and_uri_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_API_TOKEN", "tok-12345")
    params = scrub({"logger.api_key": "abc", "a.b": "prefix-tok-12345", "x.uri": "http://u:p@h", "optim.lr": "0.1"})
    assert params == {"logger.api_key": "***", "a.b": "prefix-***", "x.uri": "http://***@h", "optim.lr": "0.1"}


def test_ui_command_binds_localhost_and_strips_credentials() -> None:
    assert "--host 127.0.0.1" in ui_command("sqlite:///x/mlflow.db")
    assert "hunter2" not in ui_command("http://alice:hunter2@server:5000")
    assert "UI_HOST ?= 127.0.0.1" in (PROJECT_ROOT / "Makefile").read_text()


def test_run_records_no_secret(run_cli, mlflow_client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADREG_TEST_SECRET_TOKEN", "s3cr3t-value")
    code = run_cli("data=synthetic", "data.num_samples=64", "trainer.max_steps=1", "trainer.max_epochs=1",
                   "trainer.limit_val_batches=1", "test=false", "trainer.enable_progress_bar=false",
                   "+callbacks.notes._target_=tests.helpers.Notes", "+callbacks.notes.password=pw-in-config",
                   "+callbacks.notes.note=${oc.env:GRADREG_TEST_SECRET_TOKEN}")  # settings of no schema: any key
    assert code == 0
    run = only_run(mlflow_client)
    config = Path(mlflow_client.download_artifacts(run.info.run_id, "config/config.yaml")).read_text()
    overrides = Path(mlflow_client.download_artifacts(run.info.run_id, "config/overrides.yaml")).read_text()
    recorded = " ".join([*run.data.params.values(), *run.data.tags.values(), config, overrides])
    assert "s3cr3t-value" not in recorded and "pw-in-config" not in recorded
    assert run.data.params["callbacks.notes.password"] == "***" and run.data.params["callbacks.notes.note"] == "***"
    assert not any(v in recorded for k, v in os.environ.items() if "TOKEN" in k and len(v) >= 4)
