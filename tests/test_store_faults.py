"""The store's own faults through the real commands, the store asserted afterwards: a corrupt sqlite file, a server
that is not MLflow, a store another process keeps locked (`python -m src.train` and `python -m src.reap`), a
read-only artifact root, a deleted experiment or run (a sweep too), and a store whose disk is full before a run
and while it trains (then resumed by id: every `train/loss` step exactly once).

Each ends with one line naming the cause and the fix and a stated exit status (2: refused before any run
exists, nothing changed; 1: the run stopped, its state told truly); no process is left behind. Mounting a
tmpfs (a full or read-only disk) needs root: those tests skip elsewhere, saying so.
"""

from __future__ import annotations

import http.server
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from src.paths import PROJECT_ROOT
from src.tracking.liveness import hostname
from src.tracking.server_identity import NotMlflowServer, ensure_mlflow_server
from src.tracking.store import copy_store
from src.tracking.store_file import StoreFileBroken, ensure_mlflow_file
from tests.conftest import FAST
from tests.mlflow_reads import all_runs
from tests.servers import free_port

RUN = ["model=mlp", "data=synthetic", "data.num_samples=96", "sched=none", "test=false", *FAST]
HOLD_LOCK = ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
             "c.execute('BEGIN IMMEDIATE'); c.execute('UPDATE experiments SET name = name'); print('held', flush=True);"
             " time.sleep(600)")


def command(store: str, tmp_path: Path, module: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` on `store`; a training run writes under tmp_path (found again by that path)."""
    if module == "src.train":
        flags = tuple(a for a in args if a.startswith("-"))  # Hydra's own (-m) come before the overrides
        args = (*flags, f"paths.log_dir={tmp_path / 'outputs'}", *(a for a in args if not a.startswith("-")))
    environ = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=environ, capture_output=True,
                          text=True, timeout=900)


def one_line(proc: subprocess.CompletedProcess, code: int, *says: str) -> str:
    """The command exited `code`, printed no traceback, and its last line on stderr says each of `says`."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert all(text in last for text in says), last
    return last


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line holds `text` (a test's own tmp path): none may outlive the command."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator:
    """mount_tmpfs(folder, options): a tmpfs mounted there for the test (needs root), unmounted afterwards."""
    mounted: list[Path] = []

    def mount(folder: Path, options: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; this store fault is not exercised here")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# a corrupt store file ---------------------------------------------------------------------------------------------

def broken_copies(good: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    garbage, cut, other = folder / "garbage.db", folder / "cut.db", folder / "other.db"
    garbage.write_bytes(os.urandom(64 * 1024))
    cut.write_bytes(good.read_bytes()[:20480])
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE notes (text)")
    return {"garbage bytes": garbage, "a truncated copy": cut, "another program's database": other}


def test_store_file_checks_tell_broken_files_from_good_ones(_template_store: Path, tmp_path: Path) -> None:
    ensure_mlflow_file(_template_store, "good")  # the pair: a real store, an empty file and none at all pass
    (tmp_path / "empty.db").write_bytes(b"")
    ensure_mlflow_file(tmp_path / "empty.db", "empty")
    ensure_mlflow_file(tmp_path / "missing.db", "missing")
    says = {"garbage bytes": "does not start with the sqlite header", "a truncated copy": "it is cut short",
            "another program's database": "a sqlite database of another program"}
    for what, path in broken_copies(_template_store, tmp_path / "broken").items():
        with pytest.raises(StoreFileBroken, match=says[what]):
            ensure_mlflow_file(path, what)


@pytest.mark.parametrize("what", ["garbage bytes", "a truncated copy"])
def test_a_corrupt_store_is_refused_in_one_line_and_left_as_it_was(_template_store: Path, tmp_path: Path,
                                                                   what: str) -> None:
    db = broken_copies(_template_store, tmp_path / "store")[what]
    before = db.read_bytes()
    proc = command(f"sqlite:///{db}", tmp_path, "src.train", *RUN)
    one_line(proc, 2, f"MLflow store sqlite:///{db} is not a usable MLflow database", f"mv {db} {db}.broken",
             "Nothing was trained")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == before, "the broken file is evidence: never rewritten"
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))
    assert processes_mentioning(str(tmp_path)) == []


# a server that is not MLflow --------------------------------------------------------------------------------------

class Answers(http.server.BaseHTTPRequestHandler):
    """/health answers `OK` as MLflow's does when `mlflow` is set on the server; else 404 with an HTML page."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        mlflow = getattr(self.server, "mlflow", False)
        body, status, kind = (b"OK", 200, "text/plain") if mlflow and self.path == "/health" else (
            b"<html><body>Not Found</body></html>", 404, "text/html")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_server_check_tells_mlflow_from_another_web_server() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(NotMlflowServer, match=r"GET /health: 404 text/html; GET /api/2.0/mlflow/experiments/"
                                                  r"search: 404 text/html"):
            ensure_mlflow_server(url, url, timeout=5)
        server.mlflow = True
        ensure_mlflow_server(url, url, timeout=5)  # the pair: MLflow's answer passes
    finally:
        server.shutdown()


def test_a_tracking_uri_that_is_not_mlflow_is_refused_before_anything_is_trained(tmp_path: Path) -> None:
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"],
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "python -m http.server did not start"
            time.sleep(0.2)
        proc = command(f"http://127.0.0.1:{port}", tmp_path, "src.train", *RUN)
    finally:
        web.kill()
        web.wait()
    one_line(proc, 2, f"MLFLOW_TRACKING_URI=http://127.0.0.1:{port} answers HTTP but is not an MLflow tracking server",
             "GET /health: 404", "Nothing was trained")
    assert "Epoch" not in proc.stdout + proc.stderr and not list(tmp_path.rglob("*.ckpt"))
    assert processes_mentioning(str(tmp_path)) == []


# a store another process keeps locked ---------------------------------------------------------------------------

def test_a_locked_store_makes_a_start_and_the_reaper_wait_a_bounded_time_then_name_the_holder(
        mlflow_store: str, mlflow_client, tmp_path: Path) -> None:  # noqa: ANN001
    db = Path(mlflow_store.removeprefix("sqlite:///"))
    lost = mlflow_client.create_run(mlflow_client.create_experiment("gradreg"),
                                    tags={"host": hostname(), "pid": "999999", "pid_start": ""}).info.run_id
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGSTOP)  # a writer paused inside its transaction (Ctrl-Z, SLURM suspend)
        start = time.monotonic()
        train = command(mlflow_store, tmp_path, "src.train", *RUN, GRADREG_STORE_WAIT_S="3")
        reap = command(mlflow_store, tmp_path, "src.reap", GRADREG_STORE_WAIT_S="3")
        elapsed = time.monotonic() - start
        for proc in (train, reap):
            one_line(proc, 2, f"MLflow store {mlflow_store} is locked by another process: pid {holder.pid} (",
                     "stopped", "limit 3 s, GRADREG_STORE_WAIT_S", "kill -CONT")
        assert elapsed < 240, f"{elapsed:.0f} s: the 3 s limit did not bound the waits (MLflow alone waits minutes)"
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait()
    runs = all_runs(mlflow_client)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(lost, "RUNNING")], "nothing created, nothing closed"
    after = command(mlflow_store, tmp_path, "src.reap")  # the pair: the lock released, the reaper does its work
    assert after.returncode == 0 and "closed 1 lost run(s)" in after.stdout, after.stdout + after.stderr
    assert mlflow_client.get_run(lost).data.tags["outcome"] == "lost"
    assert processes_mentioning(str(tmp_path)) == []


# a read-only artifact root, a deleted experiment or run ----------------------------------------------------------

def test_a_read_only_artifact_root_beside_a_writable_db_is_refused_before_any_run(
        mlflow_store: str, mlflow_client, tmp_path: Path, mount_tmpfs) -> None:  # noqa: ANN001
    artifacts = mount_tmpfs(Path(mlflow_store.removeprefix("sqlite:///")).parent / "artifacts", "ro,size=1m")
    proc = command(mlflow_store, tmp_path, "src.train", *RUN)
    one_line(proc, 2, f"the run's artifacts would go to {artifacts / 'gradreg'}", f"but {artifacts} cannot be written",
             "no run was created")
    assert all_runs(mlflow_client) == [], "no empty FAILED run"


def test_a_deleted_experiment_is_refused_for_a_run_and_for_a_sweep(mlflow_store: str, mlflow_client,  # noqa: ANN001
                                                                     tmp_path: Path) -> None:
    experiment = mlflow_client.create_experiment("gradreg")
    mlflow_client.delete_experiment(experiment)
    single = command(mlflow_store, tmp_path, "src.train", *RUN)
    sweep = command(mlflow_store, tmp_path, "src.train", "-m", *RUN, "seed=0,1")
    for proc in (single, sweep):
        one_line(proc, 2, f"experiment 'gradreg' (id {experiment}) is deleted",
                 f"mlflow experiments restore --experiment-id {experiment}", "logger.experiment_name")
    assert sweep.stderr.strip().startswith("Sweep refused (no job was launched)")
    assert all_runs(mlflow_client) == [] and mlflow_client.get_experiment(experiment).lifecycle_stage == "deleted"


def test_resume_of_a_deleted_run_is_refused_and_the_run_left_as_it_was(mlflow_store: str, mlflow_client,  # noqa: ANN001
                                                                        tmp_path: Path) -> None:
    run = mlflow_client.create_run(mlflow_client.create_experiment("gradreg"))
    mlflow_client.set_terminated(run.info.run_id, "KILLED")
    mlflow_client.delete_run(run.info.run_id)
    proc = command(mlflow_store, tmp_path, "src.train", f"resume={run.info.run_id}")
    one_line(proc, 2, f"resume='{run.info.run_id}': run {run.info.run_id} is deleted",
             f"mlflow runs restore --run-id {run.info.run_id}", "The run was not changed")
    after = mlflow_client.get_run(run.info.run_id)
    assert (after.info.status, after.info.lifecycle_stage, after.data.tags.get("outcome")) == ("KILLED", "deleted",
                                                                                                None)


# a full store disk ---------------------------------------------------------------------------------------------

def loss_steps(mlflow_client, run_id: str) -> Counter:  # noqa: ANN001
    return Counter(m.step for m in mlflow_client.get_metric_history(run_id, "train/loss"))


def test_a_store_on_a_full_disk_is_refused_before_any_run(_template_store: Path, tmp_path: Path,
                                                          mount_tmpfs) -> None:  # noqa: ANN001
    disk = mount_tmpfs(tmp_path / "disk", "size=8m")
    copy_store(_template_store, disk / "mlflow.db")
    (disk / "ballast.bin").write_bytes(b"\0" * (disk / "mlflow.db").stat().st_size)  # a few MiB left: below 16
    proc = command(f"sqlite:///{disk / 'mlflow.db'}", tmp_path, "src.train", *RUN)
    one_line(proc, 2, "MiB free on its disk (a run needs at least 16 MiB)", f"df -h {disk}", "no run was created")
    from mlflow.tracking import MlflowClient

    assert all_runs(MlflowClient(f"sqlite:///{disk / 'mlflow.db'}")) == []


@pytest.mark.slow  # two runs of up to 200 steps in subprocesses: ~1 min idle, minutes on a loaded machine
def test_a_store_disk_that_fills_while_training_stops_the_run_and_its_resume_logs_each_step_once(
        _template_store: Path, tmp_path: Path, mount_tmpfs) -> None:  # noqa: ANN001
    from mlflow.tracking import MlflowClient

    disk = mount_tmpfs(tmp_path / "disk", "size=24m")
    copy_store(_template_store, disk / "mlflow.db")
    store = f"sqlite:///{disk / 'mlflow.db'}"
    longer = ["data.num_samples=1200", "trainer.limit_train_batches=1.0", "trainer.max_epochs=10",
              "trainer.max_steps=200", "logger.rows_interval_s=0.05"]  # rows sent every 50 ms: a stop far before 200
    proc = command(store, tmp_path, "src.train", *RUN, *longer, "+callbacks.fill._target_=tests.helpers.FillDiskAtStep",
                   f"+callbacks.fill.path={disk}", "+callbacks.fill.step=30")
    last = one_line(proc, 1, f"gradreg: the MLflow store {store} cannot be written (its disk is full): run ",
                    "free space on that disk, then: python -m src.train resume=")
    run_id = last.rsplit("resume=", 1)[1].split()[0]
    assert " stopped at step " in last, (proc.stdout + proc.stderr)[-4000:]
    stopped = int(last.split(" stopped at step ", 1)[1].split()[0])
    print(f"\nthe disk filled after step 30; the run stopped at step {stopped}: {last[:160]}")
    assert 30 <= stopped < 200, "stopped soon after the disk filled (within rows_interval_s), not at the end"
    client = MlflowClient(store)
    status = client.get_run(run_id).info.status
    assert status == ("FAILED" if "is FAILED (outcome=failed)" in last else "RUNNING"), last  # the line tells truly
    kept = last.split(" are kept in ", 1)[1].split(". To go on")[0] if " are kept in " in last else None
    in_store = loss_steps(client, run_id)
    assert max(in_store.values()) == 1 and max(in_store) < stopped
    (disk / "ballast.bin").unlink()  # space freed
    resumed = command(store, tmp_path, "src.train", f"resume={run_id}", "+callbacks.fill.step=1000")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
    steps = loss_steps(client, run_id)
    assert sorted(steps) == list(range(200)) and set(steps.values()) == {1}, "every train/loss step exactly once"
    assert kept is None or not Path(kept).exists(), "the kept rows were written, then their file removed"
    assert processes_mentioning(str(tmp_path)) == []
