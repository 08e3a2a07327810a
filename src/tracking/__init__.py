"""MLflow: store and URI, the retrying client, run naming, params, runs, the logger, sweeps and their tally,
redaction, reachability.

Kept free of heavy imports: the entry point probes the store through it before Lightning or MLflow load.
"""
