"""What the terminal shows during a run: the run's own lines, the progress bar and real warnings.

Third-party noise is silenced by name — the module it comes from and its message — never by
category, so a new or real warning from the same libraries still shows (and, in the tests, a
warning raised from `src` is an error: `pyproject.toml`). The test suite applies the same
filters (`tests/conftest.py`), so what is silenced here is silenced there and nothing more.
"""

from __future__ import annotations

import logging
import os
import warnings

# (message regex, category, module regex) of warnings that say nothing about the user's run
NOISE_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # Lightning's pytree helper still uses a class torch deprecated; nothing a user can change
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"pytorch_lightning\.utilities\._pytree"),
    # MLflow's sqlite store uses an SQLAlchemy loader option SQLAlchemy deprecated
    (r"The ``noload`` loader strategy is deprecated", DeprecationWarning, r"mlflow\.store"),
    # on a machine with SLURM's client, every run started by hand: this project reaches SLURM through submitit
    # (`hydra/launcher=slurm`, docs/operations.md), never through `srun python ...`
    (r"The `srun` command is available on your system but is not used", UserWarning,
     r"lightning_fabric|pytorch_lightning"),
)

# logger name -> message prefixes of INFO lines that describe library defaults, not the run
NOISE_LOG_LINES: dict[str, tuple[str, ...]] = {
    "pytorch_lightning.utilities.rank_zero": (
        "GPU available:", "TPU available:", "HPU available:", "💡 Tip:", "`Trainer(limit_train_batches=1.0)`",
        "`Trainer(limit_val_batches=1.0)`", "`Trainer(limit_test_batches=1.0)`",
    ),
    "mlflow.store.db.utils": ("Creating initial MLflow database tables", "Updating database tables"),
}


# logger name -> message prefixes of ERROR records (with a traceback) for an error the library raises to its
# caller as well: the project's code says what it means in one line (a full or locked store: store_write_stop.py)
RERAISED_ERRORS: dict[str, tuple[str, ...]] = {
    "mlflow.store.db.utils": ("SQLAlchemy database error. The following exception is caught.",),
}


class DropRaised(logging.Filter):
    """Drops a logger's records whose message starts with one of `prefixes` (errors raised to the caller too)."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


class DropPrefixes(logging.Filter):
    """Drops a logger's INFO records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and str(record.getMessage()).startswith(self.prefixes))


def silence_noise_warnings() -> None:
    """Install the warning filters of `NOISE_WARNINGS` (in front of the others)."""
    for message, category, module in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def quiet() -> None:
    """Silence the known third-party noise for this process (idempotent)."""
    silence_noise_warnings()
    # MLflow's progress bar for each artifact a resume reads (its stored overrides), ahead of the command's answer
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name, prefixes in NOISE_LOG_LINES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropPrefixes) for f in logger.filters):
            logger.addFilter(DropPrefixes(prefixes))
    for name, prefixes in RERAISED_ERRORS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropRaised) for f in logger.filters):
            logger.addFilter(DropRaised(prefixes))
