"""deploy/slurm and deploy/pbs: worker job scripts rendered by dask-jobqueue, never submitted."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parents[1] / "deploy"
GIB = 2**30


def _hpc():
    spec = importlib.util.spec_from_file_location("deploy_hpc", DEPLOY / "hpc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hpc = _hpc()


def test_worker_memory_from_chunk_size():
    # the 1,000,000-cell runs' chunks (20,000 x 2,000): 5.38 GiB peak / 0.8 -> 7 GiB
    assert hpc.worker_memory(20_000) == 7 * GIB
    assert hpc.worker_memory(40_000) == 14 * GIB  # twice the chunk: 13.45 GiB, rounded up
    assert hpc.worker_memory(20_000, n_genes=4_000) == 14 * GIB
    assert hpc.worker_memory(2_000) == 2 * GIB  # the floor
    with pytest.raises(ValueError, match="must be positive"):
        hpc.worker_memory(0)


def _script(kind: str, *options: str, chunk_cells: int = 20_000) -> str:
    args = hpc.parser(kind).parse_args(["--dashboard-port", "0", *options])
    with hpc.make_cluster(kind, args, chunk_cells) as cluster:
        assert not cluster.workers  # nothing submitted
        return cluster.job_script()


OPTIONS = ("--cores", "4", "--walltime", "05:30:00", "--queue", "big", "--account", "lab",
           "--python", "/opt/dynadask/bin/python", "--local-directory", "/scratch")  # fmt: skip


def _worker_command(script: str) -> str:
    (line,) = [x for x in script.splitlines() if "dask_worker" in x]
    return line


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_job_script_worker_command(kind):
    script = _script(kind, *OPTIONS)
    cmd = _worker_command(script)
    # the python of the compute nodes runs the worker; 4 single-threaded processes of 7 GiB
    assert cmd.startswith("/opt/dynadask/bin/python -m distributed.cli.dask_worker tcp://")
    assert re.search(r"--nthreads 1\b", cmd) and re.search(r"--nworkers 4\b", cmd)
    assert "--memory-limit 7.00GiB" in cmd
    assert "--local-directory /scratch" in cmd and "--nanny" in cmd


def test_slurm_job_script_resources():
    script = _script("slurm", *OPTIONS)
    assert "#SBATCH --cpus-per-task=4" in script and "#SBATCH -n 1" in script
    assert "#SBATCH --mem=28G" in script  # 4 workers x 7 GiB
    assert "#SBATCH -t 05:30:00" in script
    assert "#SBATCH -p big" in script and "#SBATCH -A lab" in script
    assert "#SBATCH -J dynadask-worker" in script


def test_pbs_job_script_resources():
    script = _script("pbs", *OPTIONS)
    assert "#PBS -l select=1:ncpus=4:mem=28GB" in script
    assert "#PBS -l walltime=05:30:00" in script
    assert "#PBS -q big" in script and "#PBS -A lab" in script
    assert "#PBS -N dynadask-worker" in script


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_launcher_sizes_workers_from_the_job_file(kind, capsys):
    """As job.sh runs it: the chunk size comes from deploy/job.toml (20,000 cells)."""
    argv = ["--cores", "2", "--dashboard-port", "0", "--print-job-script"]
    assert hpc.main(kind, [*argv, "--", "--config", str(DEPLOY / "job.toml")]) == 0
    cmd = _worker_command(capsys.readouterr().out)
    assert "--memory-limit 7.00GiB" in cmd and re.search(r"--nworkers 2\b", cmd)
    assert cmd.startswith(f"{sys.executable} -m distributed.cli.dask_worker")


def test_launch_script_runs_and_the_command_line_overrides_the_job_file():
    """deploy/slurm/launch.py as a program; --chunk-cells 5000 beats the file: the 2 GiB floor."""
    env = {**os.environ, "PYTHONPATH": str(DEPLOY.parent)}  # this checkout's dynadask
    done = subprocess.run(
        [sys.executable, str(DEPLOY / "slurm" / "launch.py"), "--cores", "2",
         "--dashboard-port", "0", "--print-job-script", "--",
         "--config", str(DEPLOY / "job.toml"), "--chunk-cells", "5000"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cmd = _worker_command(done.stdout)
    assert "--memory-limit 2.00GiB" in cmd and re.search(r"--nworkers 2\b", cmd)
    assert "#SBATCH --mem=4G" in done.stdout


def test_launcher_needs_the_chunk_size(capsys):
    assert hpc.main("slurm", ["--print-job-script", "--", "data.h5ad"]) == 2
    assert "--chunk-cells" in capsys.readouterr().err


def test_worker_memory_option_overrides_the_rule():
    script = _script("slurm", "--cores", "2", "--worker-memory", "1.5GiB")
    assert "--memory-limit 1.50GiB" in _worker_command(script)
    assert "#SBATCH --mem=3G" in script
    with pytest.raises(ValueError, match="no job system 'lsf'"):
        hpc.make_cluster("lsf", hpc.parser("lsf").parse_args([]), 20_000)


@pytest.mark.slow
def test_launcher_runs_dynadask_on_its_worker_jobs(tmp_path, pancreas_path, capsys):
    """The launcher's whole path with dask-jobqueue's local job system: the worker jobs are
    processes of this machine (2 jobs of 1 worker), ``dynadask run`` goes through them."""
    import numpy as np

    import dynadask as dyn

    a = dyn.read_h5ad(pancreas_path)
    idx = np.sort(np.random.default_rng(0).choice(a.n_obs, 400, replace=False))
    a[idx].copy().write_h5ad(tmp_path / "tiny.h5ad")
    argv = ["--jobs", "2", "--cores", "1", "--worker-memory", "1.5GiB", "--dashboard-port", "0",
            "--wait", "300", "--", str(tmp_path / "tiny.h5ad"), "--out", str(tmp_path / "out"),
            "--chunk-cells", "200", "--stages", "preprocess", "--no-progress"]  # fmt: skip
    assert hpc.main("local", argv) == 0
    out = capsys.readouterr().out
    assert "dashboard: http://" in out and "preprocess" in out
    adata = dyn.io.open(tmp_path / "out" / "tiny.zarr")
    assert "preprocess" in dyn.pipeline.completed(adata)
    assert adata.obsm["X_pca"].shape == (400, 30)
