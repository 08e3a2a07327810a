"""Config schemas (one per config group) and the few checks across keys, run before anything trains."""
