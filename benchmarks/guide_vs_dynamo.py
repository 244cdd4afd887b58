"""The README's main job, first and second run, beside dynamo 1.5.3's same workflow.

    python -m benchmarks.guide_vs_dynamo --dynamo-python /path/to/dynamo-venv/bin/python

On the bundled pancreas data (3,696 cells), one after the other on the same machine:

1. ``dynadask run --out DIR1`` with an empty numba cache (``NUMBA_CACHE_DIR`` a new folder:
   every kernel is compiled, as in a fresh clone);
2. ``dynadask run --out DIR2`` again with that cache (the second run of the README's job);
3. dynamo's calls of the guide on the same cells in its own interpreter
   (``benchmarks/dynamo_stages.py``: preprocess, dynamics, reduceDimension, velocities in
   umap and pca, vector fields in both, topography, ddhodge, vector calculus, Jacobians of
   the same 10 genes, fates of the same 50 cells; no figures).

Each is timed as a whole process (wall seconds, imports and compilation included) and per
stage; the table prints the stages side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
PANCREAS = HERE.parent / "dynadask" / "data" / "pancreas.h5ad"
DYNAMO_STAGES = ["preprocess", "dynamics", "reduceDimension", "cell_velocities",
                 "cell_velocities_pca", "vectorfield", "topography", "ddhodge",
                 "vector_calculus", "jacobian", "fate"]  # fmt: skip


def run_ours(out: Path, cache: Path) -> tuple[float, dict[str, float]]:
    """``dynadask run`` in a new process; its wall time and the summary's stage times."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    cmd = [sys.executable, "-m", "dynadask.cli", "run", "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    summary = proc.stdout[proc.stdout.index("summary") :]
    stages = {m[0]: float(m[1]) for m in re.findall(r"^  (\w+) +run +(\d+\.\d) s$", summary, re.M)}
    return wall, stages


def run_dynamo(python: str, out: Path) -> tuple[float, dict[str, float]]:
    """dynamo's guide on pancreas in its own interpreter; wall time and stage times."""
    report = out / "dynamo.json"
    cmd = [python, str(HERE / "dynamo_stages.py"), "--h5ad", str(PANCREAS), "--json",
           str(report), "--stages", *DYNAMO_STAGES]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, cwd=out)
    wall = time.perf_counter() - start
    rows = json.loads(report.read_text()) if report.exists() else []
    return wall, {r["stage"]: r["seconds"] for r in rows if r["status"] == "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dynamo-python", default=None, help="dynamo 1.5.3's interpreter")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guide_vs_dynamo_") as tmp:
        tmp = Path(tmp)
        cache = tmp / "numba_cache"
        first, first_stages = run_ours(tmp / "first", cache)
        second, second_stages = run_ours(tmp / "second", cache)
        theirs, their_stages = (
            run_dynamo(args.dynamo_python, tmp) if args.dynamo_python else (float("nan"), {})
        )
    names = list(dict.fromkeys([*first_stages, *their_stages]))
    print(f"{'stage':<22}{'first run':>11}{'second run':>12}{'dynamo':>10}")
    for name in names:
        cells = [first_stages.get(name), second_stages.get(name), their_stages.get(name)]
        print(f"{name:<22}" + "".join(
            f"{c:>{w}.1f}" if c is not None else f"{'-':>{w}}"
            for c, w in zip(cells, (11, 12, 10), strict=True)
        ))  # fmt: skip
    print(f"{'whole process':<22}{first:>11.1f}{second:>12.1f}{theirs:>10.1f}")


if __name__ == "__main__":
    main()
