"""gradreg: how regularizers change gradient health, measured with Hydra + Lightning + MLflow."""

from src.paths import register_resolvers

register_resolvers()
