#!/bin/bash
# The driver of a dynadask job on PBS: `qsub deploy/pbs/job.sh` from the repository.
# This small job runs the Dask scheduler and `dynadask run`; the launcher submits the workers
# as jobs of their own (deploy/hpc.py), sized from the chunk size in deploy/job.toml.
#PBS -N dynadask
#PBS -l select=1:ncpus=2:mem=8gb
#PBS -l walltime=06:00:00
#PBS -j oe

set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
# an environment with dynadask and dask-jobqueue (pip install "dynadask[deploy]"), the same
# path on every node
source "${DYNADASK_VENV:-$HOME/dynadask-venv}/bin/activate"

python deploy/pbs/launch.py \
    --jobs 4 --cores 8 --walltime 05:30:00 --local-directory "${TMPDIR:-/tmp}" \
    -- --config deploy/job.toml
