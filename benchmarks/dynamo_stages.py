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
        "vectorfield": lambda a: [dyn.vf.VectorField(a, basis=b) for b in ("umap", "pca")],
        "topography": lambda a: dyn.vf.topography(a, basis="umap"),
        "ddhodge": lambda a: dyn.ext.ddhodge(a, basis="umap"),
        "vector_calculus": lambda a: _calculus(dyn, a, ("umap", "pca")),
        "jacobian": lambda a: dyn.vf.jacobian(
            a, regulators=_top_genes(a, 10), effectors=_top_genes(a, 10), basis="pca"
        ),
        "fate": lambda a: dyn.pd.fate(a, init_cells=_fate_cells(a), basis="umap"),
        # the pca-only steps of benchmarks.vf_scale (a store with only pca coordinates)
        "vectorfield_pca": lambda a: dyn.vf.VectorField(a, basis="pca"),
        "vector_calculus_pca": lambda a: _calculus(dyn, a, ("pca",)),
        "jacobian_8x8": lambda a: dyn.vf.jacobian(
            a, regulators=_top_genes(a, 8), effectors=_top_genes(a, 8), basis="pca"
        ),
        "ddhodge_pca": lambda a: dyn.ext.ddhodge(a, basis="pca"),
        "fate_pca": lambda a: dyn.pd.fate(a, init_cells=_random_cells(a), basis="pca"),
    }


def _calculus(dyn, adata, bases) -> None:
    """speed, divergence, curl, acceleration, curvature per basis; curl only in 2-D/3-D
    (dynamo's curl fails on a 30-D field, so there is nothing to time there)."""
    for basis in bases:
        dyn.vf.speed(adata, basis=basis)
        dyn.vf.divergence(adata, basis=basis)
        if adata.obsm[f"X_{basis}"].shape[1] <= 3:
            dyn.vf.curl(adata, basis=basis)
        dyn.vf.acceleration(adata, basis=basis)
        dyn.vf.curvature(adata, basis=basis)


def _top_genes(adata, n: int) -> list[str]:
    """The genes dynadask's jacobian stage picks (pipeline.jacobian_genes): those the PCA
    holds best, sum_k Q[g, k]^2 * explained_variance_ratio_[k], among the genes with
    loadings, use_for_dynamics and a finite gamma; the top n in var order."""
    import numpy as np

    d = np.asarray(adata.uns["VecFld_pca"]["X_ctrl"]).shape[1]
    Q = np.asarray(adata.uns["PCs"] if "PCs" in adata.uns else adata.varm["PCs"])[:, :d]
    if Q.shape[0] == adata.n_vars:
        rows = np.arange(adata.n_vars)
    else:
        rows = np.flatnonzero(adata.var["use_for_pca"].to_numpy(dtype=bool))
    ratio = np.asarray(adata.uns.get("explained_variance_ratio_", np.ones(d)), dtype=float)[:d]
    score = np.full(adata.n_vars, -np.inf)
    score[rows] = (Q**2) @ ratio
    if "use_for_dynamics" in adata.var:
        score[~adata.var["use_for_dynamics"].to_numpy(dtype=bool)] = -np.inf
    if "gamma" in adata.var:
        score[~np.isfinite(adata.var["gamma"].to_numpy(dtype=float))] = -np.inf
    top = np.argsort(-score, kind="stable")[:n]
    return [str(g) for g in adata.var_names[np.sort(top[np.isfinite(score[top])])]]


def _fate_cells(adata, n: int = 50) -> list[str]:
    """The guide's fate cells as dynamo's reference run took them: the first ``n`` Ductal
    cells in file order (dynadask's fate stage draws ``n`` of the group with the lowest
    median potential, the Ductal cells on pancreas; dynamo 1.5.3's fate failed on that
    draw, 'need at least one array to concatenate'); without Ductal cells, the first ``n``."""
    clusters = adata.obs["clusters"].astype(str) if "clusters" in adata.obs else None
    if clusters is not None and (clusters == "Ductal").any():
        return list(adata.obs_names[clusters.to_numpy() == "Ductal"][:n])
    return list(adata.obs_names[:n])


def _random_cells(adata) -> list[str]:
    """benchmarks.vf_scale's fate cells: FATE_CELLS seeded random cells (seed 1)."""
    import numpy as np

    n = int(os.environ.get("FATE_CELLS", "1000"))
    init = np.random.default_rng(1).choice(adata.n_obs, min(n, adata.n_obs), replace=False)
    return list(adata.obs_names[np.sort(init)])


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
