#!/usr/bin/env python
"""Tag the project's experiments for MLflow's training view and print their URLs (`make ui` runs it).

    python scripts/ui_links.py [--store URI] [--base-url URL]

Experiments whose runs this project made get `mlflow.experimentKind=custom_model_development`, so
the UI opens their runs table (`src/tracking/ui_links.py` says why). The store is `--store`, else
`MLFLOW_TRACKING_URI`, else the project's sqlite store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: this checkout's `src`, not another one

from src.tracking.client import client  # noqa: E402
from src.tracking.redaction import redact_uri  # noqa: E402
from src.tracking.store import tracking_uri  # noqa: E402
from src.tracking.ui_links import (  # noqa: E402
    DEFAULT_UI,
    experiment_url,
    mark_training_view,
    project_experiments,
    ui_base_url,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tag the project's experiments for MLflow's training view; "
                                                 "print their URLs.")
    parser.add_argument("--store", default=None, help="tracking URI (default: MLFLOW_TRACKING_URI or mlruns/)")
    parser.add_argument("--base-url", default=DEFAULT_UI, help=f"where `mlflow ui` serves (default {DEFAULT_UI})")
    args = parser.parse_args(argv)
    uri = args.store or tracking_uri()
    mlflow_client = client(uri)
    base = ui_base_url(uri, args.base_url)
    experiments = project_experiments(mlflow_client)
    for experiment in experiments:
        mark_training_view(mlflow_client, experiment)
        print(f"Experiment {experiment.name}: {experiment_url(base, experiment.experiment_id)}")
    if not experiments:
        print(f"No runs in {redact_uri(uri)} yet (python -m src.train makes one); the UI: {base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
