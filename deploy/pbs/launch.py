"""dynadask run on Dask workers submitted as PBS jobs (``--help``; see deploy/hpc.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hpc  # noqa: E402  (deploy/hpc.py, shared by the SLURM and PBS launchers)

if __name__ == "__main__":
    sys.exit(hpc.main("pbs"))
