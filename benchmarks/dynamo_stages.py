"""Run dynamo's stages on an .h5ad file and print per-stage time and peak memory as JSON.

This script runs in dynamo's own virtual environment (it does not import dynadask):

    /path/to/dynamo-venv/bin/python benchmarks/dynamo_stages.py --h5ad data.h5ad \
        --stages preprocess dynamics reduceDimension cell_velocities --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import traceback
import warnings

import psutil

GIB = 2**30


def _stage_calls(dyn):
    return {
        "preprocess": lambda a: dyn.pp.Preprocessor().preprocess_adata(a, recipe="monocle"),
        "neighbors": lambda a: dyn.tl.neighbors(a),
        "moments": lambda a: dyn.tl.moments(a),
        "dynamics": lambda a: dyn.tl.dynamics(a),
        "reduceDimension": lambda a: dyn.tl.reduceDimension(a),
        "cell_velocities": lambda a: dyn.tl.cell_velocities(a),
        "cell_velocities_pca": lambda a: dyn.tl.cell_velocities(a, basis="pca"),
    }


class Peak:
    """Peak resident memory of this process between start and stop."""

    def __init__(self) -> None:
        self.proc, self.peak, self._stop = psutil.Process(os.getpid()), 0, threading.Event()

    def __enter__(self) -> Peak:
        def run() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.proc.memory_info().rss)
                self._stop.wait(0.2)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--h5ad", required=True)
    parser.add_argument("--stages", nargs="+", required=True)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import anndata
    import dynamo as dyn

    calls = _stage_calls(dyn)
    results = []
    adata = anndata.read_h5ad(args.h5ad)
    for name in args.stages:
        if name not in calls:  # a stage of ours with no dynamo counterpart (e.g. figures)
            continue
        row = {"stage": name, "cells": adata.n_obs}
        start = time.perf_counter()
        try:
            with Peak() as peak:
                calls[name](adata)
            row["status"] = "ok"
        except Exception as err:  # report dynamo's own failure and stop
            row["status"] = f"failed: {type(err).__name__}: {err}"[:300]
            traceback.print_exc()
        row["seconds"] = time.perf_counter() - start
        row["peak_gib"] = peak.peak / GIB
        results.append(row)
        with open(args.json, "w") as f:  # written after every stage: survives a kill
            json.dump(results, f, indent=2)
        print(json.dumps(row), flush=True)
        if row["status"] != "ok":
            break


if __name__ == "__main__":
    main()
