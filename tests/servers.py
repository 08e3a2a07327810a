"""Real servers for end-to-end tests, on free ports of 127.0.0.1, stopped afterwards: `mlflow server`
(any backend store) and a throw-away PostgreSQL cluster (Debian's `postgresql` package)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

MLFLOW_CLI = Path(sys.executable).parent / "mlflow"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log_path: Path, start_timeout_s: float = 90) -> Iterator[str]:
    """`mlflow server` on a free port (proxied artifacts under `artifacts`); yields its URL."""
    port = free_port()
    cmd = [str(MLFLOW_CLI), "server", "--backend-store-uri", backend_uri, "--artifacts-destination",
           artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTEST_CURRENT_TEST")}
    log = log_path.open("w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:  # not listening yet, or too busy starting to answer
                pass
            assert time.monotonic() < deadline, f"mlflow server did not answer within {start_timeout_s:g} s"
            time.sleep(0.5)
        yield url
    finally:  # the server and its workers form the process group we started
        stop_group(server)
        log.close()


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group `proc` leads, SIGKILL after 15 s; quiet when it is gone already."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def postgres_bin() -> Path | None:
    """The folder of `initdb` and `pg_ctl`: Debian keeps them in /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


@contextmanager
def postgres_cluster(database: str = "mlflow") -> Iterator[str]:
    """A new PostgreSQL cluster in a temp folder on a free port; yields `postgresql+psycopg2://...` for `database`.

    PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user (runuser).
    Skips the test, saying why, where PostgreSQL or the Python driver is missing.
    """
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run does it)")
    try:
        import psycopg2
    except ImportError:
        pytest.skip("the PostgreSQL driver is missing (pip install psycopg2-binary, in the dev extra)")
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="gradreg-pg-"))  # /tmp: readable by the postgres user
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()

    def run(*args: str) -> None:
        proc = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{args[0]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "gradreg", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w",
            "-t", "60", "start")
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user="gradreg", dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {database}")
            conn.close()
            yield f"postgresql+psycopg2://gradreg@127.0.0.1:{port}/{database}"  # the driver named: SQLAlchemy 2.1+
            # would otherwise look for psycopg 3
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
