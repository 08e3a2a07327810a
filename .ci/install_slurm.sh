#!/usr/bin/env bash
# Installs Debian's SLURM (slurmctld, slurmd, the client commands) and munge when they are missing, for the
# single-node cluster the SLURM tests start (tests/slurm_cluster.py). Idempotent; needs root and apt-get,
# otherwise it says so and the SLURM tests skip themselves. Never fails the caller.
set -uo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
   && command -v sbatch >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge >/dev/null; } || echo "SLURM could not be installed: its tests will be skipped"
else
  echo "SLURM is missing and cannot be installed here (needs root and apt-get): its tests will be skipped"
fi
exit 0
