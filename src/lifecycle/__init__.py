"""A run from start to end: the run context and its outcome, signals, graceful stop, resume, DDP ranks."""
