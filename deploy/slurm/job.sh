#!/bin/bash
# The driver of a dynadask job on SLURM: `sbatch deploy/slurm/job.sh` from the repository.
# This small job runs the Dask scheduler and `dynadask run`; the launcher submits the workers
# as jobs of their own (deploy/hpc.py), sized from the chunk size in deploy/job.toml.
#SBATCH --job-name=dynadask
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=06:00:00
#SBATCH --output=dynadask-%j.log

set -euo pipefail
# an environment with dynadask and dask-jobqueue (pip install "dynadask[deploy]"), the same
# path on every node
source "${DYNADASK_VENV:-$HOME/dynadask-venv}/bin/activate"

python deploy/slurm/launch.py \
    --jobs 4 --cores 8 --walltime 05:30:00 --local-directory "${TMPDIR:-/tmp}" \
    -- --config deploy/job.toml "$@"
