"""Execute ``notebooks/atlas_on_a_cluster.ipynb`` end to end with nbclient and time it.

The notebook writes an atlas store, connects to a scheduler (``--scheduler``; default: a
LocalCluster of two workers it starts), runs the workflow's stages through it and shows the
figures of the 1,000,000-cell run. Its parameters go in through the environment
(``ATLAS_CELLS``, ``ATLAS_CHUNK_CELLS``, ``ATLAS_OUT``, ``DASK_SCHEDULER_ADDRESS``); the
executed notebook is written beside the output for reading.

    python -m benchmarks.notebook_cluster --cells 3000 --out /tmp/atlas_nb
    python -m benchmarks.notebook_cluster --cells 100000 --chunk-cells 20000 \\
        --scheduler tcp://scheduler:8786 --out /shared/atlas_nb
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "atlas_on_a_cluster.ipynb"


def execute(
    notebook: Path,
    out: Path,
    env: dict[str, str],
    timeout: int = 3600,
) -> tuple[dict, float]:
    """Run ``notebook`` in a fresh kernel with ``env`` set; return it executed and the wall s."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(notebook, as_version=4)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        start = time.perf_counter()
        NotebookClient(
            book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": out}}
        ).execute()
        seconds = time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return book, seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=3000)
    parser.add_argument("--chunk-cells", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("atlas_on_a_cluster"))
    parser.add_argument("--scheduler", default="")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {
        "ATLAS_CELLS": str(args.cells),
        "ATLAS_CHUNK_CELLS": str(args.chunk_cells),
        "ATLAS_OUT": str(out),
        "DASK_SCHEDULER_ADDRESS": args.scheduler,
        "DYNADASK_REPO": str(ROOT),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    book, seconds = execute(NOTEBOOK, out, env)
    import nbformat

    nbformat.write(book, out / NOTEBOOK.name)
    timings = _timings(book)
    print(f"notebook {NOTEBOOK.name}: {args.cells:,} cells, executed in {seconds:.1f} s")
    for line in timings:
        print("  " + line)
    print(f"executed notebook: {out / NOTEBOOK.name}")
    (out / "notebook_run.json").write_text(
        json.dumps({"cells": args.cells, "seconds": seconds, "stages": timings}, indent=1)
    )


def _timings(book: dict) -> list[str]:
    """The notebook's per-stage lines (``<stage> <seconds> s``) from its printed output."""
    lines = []
    for cell in book["cells"]:
        for output in cell.get("outputs", []):
            for line in "".join(output.get("text", "")).splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[2] == "s":
                    lines.append(line.strip())
    return lines


if __name__ == "__main__":
    main()
