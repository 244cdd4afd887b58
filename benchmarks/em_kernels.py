"""CPU milliseconds per gene of the dynamical EM's kernels on pancreas cells, one thread.

    python -m benchmarks.em_kernels [--genes 120] [--save TABLES.npz | --compare TABLES.npz]

The bundled pancreas data through ``recipe_monocle`` and ``moments``; a seeded sample of
2,000 cells (``DynamicalEM.n_fit_cells``) and ``--genes`` genes spread evenly over the PCA
genes. Times, in this process (no Dask), each kernel the ``dynamical`` and ``auto`` models
spend their time in: the EM fits (``kernels.dynamical_em.fit_genes``), one round of the
shared-time refit (``kernels.shared_time.refit_genes``; ``DynamicalEM`` runs 32) and the
cells' joint time that feeds the next round (``kernels.shared_time.joint_time``, run in the
client). Each is compiled on two genes first, so compilation is not timed. CPU time of the
process: steadier than wall time on a shared machine.

``--save`` writes the kernels' output tables; ``--compare`` reports whether this checkout's
tables are bit-identical to saved ones (a speed change that should not move any result).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import dynadask as dyn
from dynadask.est.csc.dynamical_em import _unit
from dynadask.kernels import dynamical as kd
from dynadask.kernels import dynamical_em as ke
from dynadask.kernels import shared_time as kst
from dynadask.kernels.kinetics import dense_rows


def cells(n_genes: int, n_cells: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Moments ``M_u``, ``M_s`` of a seeded cell sample and ``n_genes`` PCA genes."""
    adata = dyn.sample_data.pancreas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn.pp.recipe_monocle(adata)
        dyn.tl.moments(adata)
    genes = np.flatnonzero(adata.var["use_for_pca"].to_numpy(bool))
    genes = genes[np.linspace(0, genes.size - 1, n_genes).astype(int)]
    rows = np.sort(np.random.default_rng(seed).choice(adata.n_obs, n_cells, replace=False))
    u, s = (dense_rows(adata.layers[k], 0, adata.n_obs) for k in ("M_u", "M_s"))
    return (np.ascontiguousarray(x[np.ix_(rows, genes)], np.float64) for x in (u, s))


def _first(*xs: np.ndarray) -> list[np.ndarray]:
    """The first two columns, C-ordered like the full arrays (one compiled signature)."""
    return [np.ascontiguousarray(x[:, :2]) for x in xs]


def _cpu(fn, *args, **kwargs):
    start = time.process_time()
    out = fn(*args, **kwargs)
    return out, time.process_time() - start


def run(u: np.ndarray, s: np.ndarray) -> tuple[list[tuple[str, int, float]], dict]:
    """Time the kernels; rows ``(kernel, genes, CPU s)`` and the output tables."""
    gamma0 = kd.start_gamma(u, s)
    ke.fit_genes(*_first(u, s), gamma0[:2])  # compiled for the types timed below
    table, t_em = _cpu(ke.fit_genes, u, s, gamma0)
    traj = np.flatnonzero(np.isfinite(table[1]) & (table[6] >= ke.MIN_R2))
    uf, sf = np.ascontiguousarray(u[:, traj]), np.ascontiguousarray(s[:, traj])
    curve = [table[i, traj] for i in (0, 1, 2, 4, 5)]  # alpha, gamma, t_switch, var_u, var_s
    times = ke.gene_times(uf, sf, *curve, n_grid=24)
    span = np.nanmax(times, 0) - np.nanmin(times, 0)
    shared = _unit(kst.shared_time(times, span, np.nanmin(times, 0)))  # as the first round's
    kst.refit_genes(*_first(uf, sf), *[c[:2] for c in curve], time=shared)
    fit, t_refit = _cpu(kst.refit_genes, uf, sf, *curve, time=shared)
    grid = np.linspace(-0.1, 1.1, 121)
    args = (grid, fit[0], fit[1], fit[2], fit[3], fit[4], curve[3], curve[4])
    kst.joint_time(*_first(uf, sf), grid, *[a[:2] for a in args[1:]])
    joint, t_joint = _cpu(kst.joint_time, uf, sf, *args)
    rows = [
        ("EM fits (fit_genes)", u.shape[1], t_em),
        ("one refit round (refit_genes)", traj.size, t_refit),
        ("joint time (joint_time)", traj.size, t_joint),
    ]
    return rows, {"em": table, "refit": fit, "joint": joint}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=120)
    parser.add_argument("--save", default=None, help="write the kernels' tables (.npz)")
    parser.add_argument("--compare", default=None, help="compare with saved tables (.npz)")
    args = parser.parse_args(argv)
    u, s = cells(args.genes)
    rows, tables = run(u, s)
    print(f"{u.shape[0]:,} pancreas cells, one thread, CPU time")
    print(f"{'kernel':<32} {'genes':>6} {'CPU s':>8} {'ms a gene':>10}")
    for name, genes, sec in rows:
        print(f"{name:<32} {genes:>6} {sec:>8.2f} {1000 * sec / max(genes, 1):>10.1f}")
    if args.save:
        np.savez(args.save, **tables)
    if args.compare:
        old = np.load(args.compare)
        for name, new in tables.items():
            same = np.array_equal(old[name], new, equal_nan=True)
            print(f"{name}: {'bit-identical' if same else 'DIFFERENT'} to {args.compare}")


if __name__ == "__main__":
    main()
