"""MLflow: store and URI, the retrying client, run naming, params, runs and their outcome, the logger,
sweeps and their tally, liveness tags and the reaper, redaction, reachability.

Kept free of heavy imports: the entry point probes the store through it before Lightning or MLflow load.
"""

import os

# MLflow's usage telemetry would try the network from every job (offline machines, clusters) and its
# session id races between parallel sweep workers; a research tool's runs should not phone home.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
