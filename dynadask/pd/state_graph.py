"""``dyn.pd.state_graph``: transitions between cell groups from predicted fates."""

from __future__ import annotations

from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import fate as gf
from ..graph.fate_bias import Index
from ..io import commit
from ..kernels import fate as kf
from ..kernels import state_graph as ks
from .fate import _t_end

MIN_POINTS = 10
"""A trajectory passes a group with more than this many points near its cells (dynamo's)."""


def state_graph(
    adata: ad.AnnData,
    group: str,
    basis: str = "umap",
    *,
    method: str = "vf",
    sample_num: int | None = 100,
    interpolation_num: int = 250,
    t_end: float | None = None,
    seed: int = 0,
) -> ad.AnnData:
    """Estimate how cells move between groups by following the learned field from each group.

    dynamo's ``'vf'`` method: from each group, ``sample_num`` cells (all when fewer; a
    seeded draw, dynamo's is unseeded) are integrated forward on the learned field of
    ``basis`` (the batched integrator of :func:`dynadask.pd.fate`, ``interpolation_num``
    points each). A trajectory's points closer than the smallest nearest-other-cell
    distance of the group's start cells (at least 1e-3) to the point before are dropped; each
    remaining point is matched with its nearest cell, and counts when it lies closer than
    the start cells' mean nearest-other distance. A group with more than 10 counted points
    is passed; a trajectory passing ``k`` groups adds ``1 / k`` to each, and the row of a
    group is divided by its number of trajectories. The group's own row includes itself
    (trajectories start there), as in dynamo.

    Departures from dynamo 1.5.3: the draw is seeded; ``group_avg_time[i, j]`` is the mean,
    over the trajectories from ``i`` that pass ``j``, of their mean time among the counted
    points in ``j`` (dynamo divides a sum of times by the sum of ``1 / k`` weights, and
    takes the times of the groups in ``value_counts`` order from a ``groupby`` in sorted
    order). Only the ``'vf'`` method is offered (dynamo's ``'markov'`` lumps a dense
    N x N transition matrix).

    Parameters
    ----------
    adata
        AnnData with ``obs[group]``, ``obsm['X_<basis>']`` and ``uns['VecFld_<basis>']``.
    group
        obs column of the cell groups.
    basis
        The embedding of the field.
    method
        ``'vf'``.
    sample_num
        Start cells per group (``None``: all).
    interpolation_num
        Points per trajectory.
    t_end
        Integration time (default dynamo's: the widest coordinate range over the 1st
        percentile of the field's components at the cells).
    seed
        Seed of the draw of start cells.

    Returns
    -------
    anndata.AnnData
        ``adata``, with the graph.

    Raises
    ------
    dynadask.MissingKeyError
        Without the group column, the embedding or the field.
    dynadask.InputError
        For another method or a bad ``sample_num``.

    Writes
    ------
    uns['<group>_graph']
        ``group_graph`` (groups x groups: the share of trajectories from the row's group
        passing the column's), ``group_avg_time`` (mean passing time, NaN where none pass),
        ``group_names`` (in order of first appearance, as dynamo).
    """
    if method != "vf":
        raise InputError(
            f"method={method!r}: state_graph offers method='vf' (trajectories of the learned "
            "field); dynamo's 'markov' needs a dense N x N transition matrix"
        )
    if sample_num is not None and sample_num < 1:
        raise InputError(f"sample_num={sample_num}: pass a positive number of cells or None")
    basis = basis[2:] if basis.startswith("X_") else basis
    if group not in adata.obs:
        raise MissingKeyError(f"no obs[{group!r}]: pass the obs column of the cell groups")
    key = keys.basis_key(basis)
    vf = adata.uns.get(f"VecFld_{basis}")
    if key not in adata.obsm or vf is None:
        raise MissingKeyError(
            f"state_graph needs obsm[{key!r}] and uns['VecFld_{basis}']: run "
            f"dyn.tl.reduceDimension / dyn.tl.cell_velocities and dyn.vf.VectorField(adata, "
            f"basis={basis!r})"
        )
    labels = adata.obs[group].astype(str).to_numpy()
    names = list(pd.unique(labels))
    codes = pd.Categorical(labels, categories=names).codes.astype(np.int64)
    rng = np.random.default_rng(seed)
    starts = []
    for g in range(len(names)):
        rows = np.flatnonzero(codes == g)
        take = rows.size if sample_num is None else min(sample_num, rows.size)
        starts.append(np.sort(rng.choice(rows, take, replace=False)))
    Xd = adata.obsm[key]
    (X,) = compute(Xd, desc="state graph: cells") if isinstance(Xd, da.Array) else (Xd,)
    X = np.asarray(X, dtype=np.float64)
    if t_end is None:
        t_end = _t_end(adata, Xd, basis, vf, None)
    field = kf.gaussian_field(vf["X_ctrl"], vf["C"], vf["beta"])
    y0 = X[np.concatenate(starts)]
    T, P = gf.fates(
        y0, field, float(t_end), direction="forward", interpolation_num=int(interpolation_num)
    )
    # fates come as (n, d, L), dynamo's layout; the lumping walks each trajectory's points
    graph, avg = _lump(X, codes, starts, T, P.transpose(0, 2, 1), len(names))
    out = {"group_graph": graph, "group_avg_time": avg, "group_names": np.asarray(names)}
    commit(adata, "state_graph", uns={f"{group}_graph": out})
    return adata


def _lump(
    X: np.ndarray, codes: np.ndarray, starts: list[np.ndarray], T: Any, P: Any, G: int
) -> tuple[np.ndarray, np.ndarray]:
    """The group graph and mean passing times from the trajectories of every group."""
    index = Index(X)
    graph = np.zeros((G, G))
    t_sum, t_n = np.zeros((G, G)), np.zeros((G, G))
    first = 0
    for i, rows in enumerate(starts):
        d0, _ = index(X[rows], 2)
        gap = d0[:, -1]
        threshold, tol = float(gap.mean()), max(float(gap.min()), 1e-3)
        for b in range(first, first + rows.size):
            keep = ks.kept_points(P[b], tol)
            dist, idx = index(P[b][keep], 1)
            passed, mean_t = ks.passes(
                codes[idx[:, 0]], dist[:, 0], T[b][keep], threshold, G, MIN_POINTS
            )
            if passed.any():
                graph[i, passed] += 1.0 / passed.sum()
                t_sum[i, passed] += mean_t[passed]
                t_n[i, passed] += 1
        graph[i] /= max(rows.size, 1)
        first += rows.size
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(t_n > 0, t_sum / t_n, np.nan)
    return graph, avg
