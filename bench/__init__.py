"""Benchmarks of the training step and of the default run (`python scripts/bench_monitor.py`).

- `modes.py`: what is timed: the bare PyTorch loop, the project's module, the monitor, and the
  `monitor+<instrument>` modes (one entry each);
- `steps.py`: timed fits, interleaved across modes;
- `default_run.py`: wall time of `python -m src.train` in subprocesses;
- `table.py`: the printed table and the JSON;
- `sync.py`: the GPU check that the monitor does not synchronize between flushes.
"""
