"""How a run ends in MLflow: its `outcome` tag and the terminal status that matches it.

Kept apart from `runs.py` (which starts runs and reads the sweep's context) so the reaper can close
a lost run without importing the code that starts one.
"""

from __future__ import annotations

from typing import Any

STATUS_OF_OUTCOME = {"completed": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "interrupted": "KILLED",
                     "lost": "KILLED"}


def finish_run(mlflow_client: Any, run_id: str, outcome: str) -> None:
    """Tag the outcome and set the terminal status that matches it."""
    mlflow_client.set_tag(run_id, "outcome", outcome)
    mlflow_client.set_terminated(run_id, STATUS_OF_OUTCOME[outcome])
