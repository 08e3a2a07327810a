"""The sweep's gradient-health dashboard, made when the sweep ends: a Hydra callback.

`SweepDashboard` sits before the MLflow sweep callback in `conf/hydra/default.yaml`, so Hydra's
reverse order at the end (and the reverse order of exit handlers, when a failed job made Hydra skip
`on_multirun_end`) runs it after the parent run was tallied and closed. It reads the parent from the
sweep's `mlflow_sweep.json`, builds the report's rows from the job runs and logs
`dashboard/gradient_health.html` on the parent (`src/report/dashboard.py`), then prints its URL.
A dashboard that cannot be made costs one line, never the sweep's outcome; `python
scripts/report.py --sweep <id>` makes it again on demand.
"""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.tracking.client import client
from src.tracking.sweeps import read_sweep_file
from src.tracking.ui_links import run_url, ui_base_url


class SweepDashboard(Callback):
    """Makes the sweep's dashboard at its end.

    Args:
        enabled: false makes none (`scripts/report.py` still can).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._sweep_dir: Path | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Launchers pickle callbacks into their workers: the settings only."""
        return {"enabled": self.enabled, "_sweep_dir": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            self._sweep_dir = Path(str(config.hydra.sweep.dir))
            atexit.register(self.make)  # Hydra skips on_multirun_end when a job raised

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.make()

    def make(self) -> str | None:
        """Log the dashboard on the sweep's parent run and print its URL; its artifact path, or None. Once."""
        sweep_dir, self._sweep_dir = self._sweep_dir, None
        info = read_sweep_file(sweep_dir) if sweep_dir is not None else {}
        if not info.get("parent_run_id"):
            return None
        from src.report.document import sweep_dashboard

        try:
            mlflow_client = client(info["tracking_uri"])
            artifact = sweep_dashboard(mlflow_client, info["sweep_id"], sweep_dir / "dashboard")
        except Exception as err:  # noqa: BLE001 - the jobs' results are already safe in the store
            why = str(err).splitlines()[0] if str(err) else ""
            print(f"MLflow sweep {info['sweep_id']}: no dashboard ({type(err).__name__}: {why}); "
                  f"`python scripts/report.py --sweep {info['sweep_id']}` makes it")
            return None
        if artifact:
            page = run_url(ui_base_url(mlflow_client.tracking_uri), info["experiment_id"], info["parent_run_id"])
            print(f"Dashboard:   {page.replace('?', f'/artifacts/{artifact}?', 1)}")
        return artifact
