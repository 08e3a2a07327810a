"""A run from start to end: the run context and its outcome, signals, graceful stop, resume, DDP ranks,
atomic checkpoints, and how a stopped job leaves the process. (Liveness and the reaper, which only
read and write MLflow tags, are in `src/tracking/`.)"""
