"""A run from start to end: the run context and its outcome, signals, graceful stop, resume, DDP ranks,
liveness and the reaper, atomic checkpoints, and how a stopped job leaves the process."""
