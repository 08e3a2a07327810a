"""How a run ends in MLflow: its `outcome` tag and the terminal status that matches it.

Kept apart from `runs.py` (which starts runs and reads the sweep's context) so the reaper can close
a lost run without importing the code that starts one.
"""

from __future__ import annotations

from typing import Any

CLAIM_PREFIX = "lifecycle.claim."  # params: one per attempt to drive the run (src/tracking/claim.py)
RELEASED_TAG = "lifecycle.claim_released"  # the newest claim whose process has closed the run
STATUS_OF_OUTCOME = {"completed": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "interrupted": "KILLED",
                     "lost": "KILLED"}


def finish_run(mlflow_client: Any, run_id: str, outcome: str) -> None:
    """Tag the outcome, set the terminal status that matches it, then release the run's claim (if any)."""
    mlflow_client.set_tag(run_id, "outcome", outcome)
    mlflow_client.set_terminated(run_id, STATUS_OF_OUTCOME[outcome])
    release_claim(mlflow_client, run_id)  # the last write: a resume may claim the run from here on


def claims(run: Any) -> dict[int, str]:
    """The run's claims (`src/tracking/claim.py`): attempt number -> token."""
    out = {}
    for key, value in run.data.params.items():
        if key.startswith(CLAIM_PREFIX) and key[len(CLAIM_PREFIX):].isdigit():
            out[int(key[len(CLAIM_PREFIX):])] = value
    return out


def release_claim(mlflow_client: Any, run_id: str) -> None:
    """Mark the run's newest claim released (after its terminal status is set): the next resume may begin."""
    found = claims(mlflow_client.get_run(run_id))
    if found:
        mlflow_client.set_tag(run_id, RELEASED_TAG, str(max(found)))
