#!/usr/bin/env python
"""The slow test files a change needs: those whose area (the paths they exercise) the change touches.

    python scripts/slow_tests.py                 # the change: this branch since main, or the last commit on main
    python scripts/slow_tests.py --base v1.2     # the change since a given revision
    python scripts/slow_tests.py --all           # every file that holds a slow test

Prints one test file per line (nothing when no slow area was touched); `.ci/run` runs
`pytest -m slow` on them after `make test`. Every test file with a `@pytest.mark.slow` test must be
listed in `AREAS` (`tests/test_slow_areas.py` holds it so), so a new slow test says which change
must run it. A change to the test file itself, `conftest.py` or the test helpers selects it too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVERYTHING = ("pyproject.toml", "tests/conftest.py", "tests/helpers.py", "tests/sweeps.py", "tests/servers.py",
              "tests/signalled_runs.py", "tests/zoo.py", "conf/train.yaml", "src/train.py", "src/settings/")
RUNS = ("src/lifecycle/", "src/tracking/", "src/config/", "conf/trainer/", "conf/hydra/")  # a run's plumbing
AREAS: dict[str, tuple[str, ...]] = {  # slow test file -> path prefixes whose change must run it
    "tests/test_bench.py": ("src/monitor/", "src/training/", "src/foreach.py", "src/amp.py", "bench/",
                            "scripts/bench_monitor.py"),
    "tests/test_host_reads.py": ("src/monitor/", "src/amp.py", "src/foreach.py", "bench/"),
    "tests/test_calibration_zoo.py": ("src/monitor/", "src/models/", "src/training/", "tests/zoo_table.py"),
    "tests/test_ddp_cpu.py": (*RUNS, "src/monitor/", "src/training/"),
    "tests/test_ddp_batches.py": (*RUNS, "src/training/data/"),
    "tests/test_disk_full.py": ("src/lifecycle/", "src/tracking/", "src/monitor/record.py", "src/monitor/sink.py"),
    "tests/test_faults_checkpoints.py": RUNS,
    "tests/test_faults_claims.py": (*RUNS, "tests/servers.py"),
    "tests/test_forensics_runs.py": ("src/monitor/forensics/", "src/lifecycle/", "conf/experiment/", "conf/monitor/"),
    "tests/test_health_demos.py": ("src/monitor/", "src/models/mlp.py", "conf/experiment/", "conf/monitor/"),
    "tests/test_instrument_sharpness.py": ("src/monitor/",),
    "tests/test_monitor_resume.py": ("src/monitor/", "src/lifecycle/"),
    "tests/test_optuna_sweep.py": (*RUNS, "conf/experiment/l2_search.yaml", "conf/hydra/sweeper/"),
    "tests/test_preemption.py": (*RUNS, "src/training/data/"),
    "tests/test_reg_config.py": ("src/training/regularizers.py", "conf/reg/", "src/config/"),
    "tests/test_reaper.py": ("src/tracking/reaper.py", "src/tracking/liveness.py", "src/lifecycle/",
                             "src/reap.py"),
    "tests/test_resume_by_id.py": RUNS,
    "tests/test_run_names.py": ("src/tracking/", "conf/"),
    "tests/test_sigterm_resume.py": (*RUNS, "src/monitor/state.py"),
    "tests/test_slurm_sweep.py": (*RUNS, "tests/slurm_cluster.py", ".ci/install_slurm.sh"),
    "tests/test_store_faults.py": (*RUNS, "src/background.py"),
    "tests/test_study_blocks.py": ("src/monitor/", "src/models/", "src/training/", "src/report/", "conf/experiment/",
                                   "conf/study/", "scripts/study.py"),
    "tests/test_study_report.py": ("src/report/", "scripts/report.py", "src/monitor/", "conf/study/"),
    "tests/test_sweep_launchers.py": (*RUNS, "scripts/report.py", "src/report/"),
    "tests/test_sweep_postgres.py": (*RUNS, "tests/servers.py"),
    "tests/test_sweep_server.py": (*RUNS, "tests/servers.py"),
    "tests/test_sweep_status.py": RUNS,
    "tests/test_train_smoke.py": ("src/models/resnet.py", "src/models/common.py", "src/training/", *RUNS),
    "tests/test_ui_screenshots.py": ("src/tracking/ui_links.py", "scripts/ui_screenshots.py",
                                     "scripts/headless_chromium.py"),
    "tests/test_validation.py": ("src/config/", "src/lifecycle/exits.py", "src/tracking/reaper.py"),
    "tests/test_vgg_init.py": ("src/models/vgg.py", "src/models/common.py"),
}


def git(*args: str) -> str | None:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def default_base() -> str | None:
    """Where this change starts: the merge base with main for a branch; the previous commit on main itself
    (after a merge, the main it landed on); None when neither exists (then every slow test runs)."""
    head = git("rev-parse", "HEAD")
    for ref in ("origin/main", "main"):
        base = git("merge-base", ref, "HEAD")
        if base and base != head:
            return base
    return "HEAD~1" if git("rev-parse", "--verify", "-q", "HEAD~1") else None


def changed_paths(base: str) -> list[str]:
    return (git("diff", "--name-only", base, "HEAD") or "").splitlines()


def selected(paths: list[str]) -> list[str]:
    """The slow test files whose area, or whose own file, one of `paths` falls in."""
    if any(p.startswith(EVERYTHING) for p in paths):
        return sorted(AREAS)
    return sorted(test for test, area in AREAS.items() if any(p == test or p.startswith(area) for p in paths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the revision the change starts from (default: see default_base)")
    parser.add_argument("--all", action="store_true", help="every file that holds a slow test")
    args = parser.parse_args(argv)
    base = args.base or default_base()
    tests = sorted(AREAS) if args.all or base is None else selected(changed_paths(base))
    print("\n".join(tests))
    print(f"slow tests for the change since {base or '(no base: all)'}: {len(tests)} file(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
