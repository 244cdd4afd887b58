"""``dyn.ext.ddhodge``: potential and divergence of the learned flow on a kNN graph."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import hodge as gh
from ..graph import vectorfield as gv
from ..graph.blocks import take_columns
from ..graph.neighbors import choose_method, knn
from ..io import commit
from ..kernels import hodge as kh
from ..kernels import vectorfield as kv

log = logging.getLogger(__name__)

_SAMPLING = ("velocity", "random")


def ddhodge(
    adata: ad.AnnData,
    X_data: np.ndarray | None = None,
    layer: str | None = None,
    *,
    basis: str = "pca",
    n: int = 30,
    VecFld: dict[str, Any] | None = None,
    adjmethod: str = "graphize_vecfld",
    n_downsamples: int | None = None,
    up_sampling: bool = True,
    sampling_method: str = "velocity",
    seed: int = 19491001,
    enforce: bool = False,
    cores: int = 1,
    rtol: float = 1e-10,
    maxiter: int | None = None,
) -> None:
    """Hodge decomposition of the learned flow on a kNN graph: potential and divergence.

    dynamo's method (ddhodge): the ``n`` nearest neighbours of every cell in the basis,
    searched afresh there, give an undirected graph; on an edge ``(i, j)`` the flow is
    ``(f(x_i) + f(x_j)) . u_ij / 2`` with ``u_ij`` the unit vector from ``x_i`` to ``x_j``
    and ``f`` the learned field. The divergence is each cell's net outflow and the potential
    solves the unweighted graph Poisson equation ``L p = -div``, zero mean on each connected
    component, shifted to a minimum of 0: it increases along the flow (low at progenitors,
    high at terminal states, like a pseudotime).

    Departures from dynamo 1.5.3:

    - every cell is solved by default: the graph is sparse, built in row blocks, and the
      Laplacian is solved by conjugate gradients preconditioned by an algebraic multigrid
      V-cycle (:mod:`dynadask.kernels.multigrid`), with one pinned node per connected
      component (dynamo fills a dense ``N x N`` matrix and solves it densely,
      so it samples 5,000 cells above that many). ``n_downsamples=5000`` gives dynamo's
      sampled mode: the potential on a seeded sample, averaged onto the other cells from
      their ``n + 1`` nearest sampled cells;
    - ``sampling_method='random'`` draws without replacement (dynamo's draws with
      replacement and can pick a cell twice); ``'trn'`` is not offered;
    - the flow matrix ``obsp['<basis>_ddhodge']`` is stored sparse;
    - no stray ``obs['<basis>_potential']`` column of zeros is written in sampled mode.

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed) with ``obsm['X_<basis>']`` and
        ``uns['VecFld_<basis>']`` (from :func:`dynadask.vf.VectorField`).
    X_data
        Coordinates to use instead of ``obsm['X_<basis>']`` (``n_obs x d``).
    layer
        dynamo's gene-space input; only with ``basis=None``, which is not offered.
    basis
        The embedding the field was learned in.
    n
        Neighbours per cell (the cell itself not counted).
    VecFld
        A fit to use instead of ``uns['VecFld_<basis>']`` (``X_ctrl``, ``C``, ``beta``).
    adjmethod
        ``'graphize_vecfld'`` (the flow of the learned field on the kNN graph).
    n_downsamples
        ``None`` (default): every cell. An integer: dynamo's sampled mode when there are
        more cells than that.
    up_sampling
        Sampled mode: give the other cells the mean over their nearest sampled cells (else
        NaN).
    sampling_method
        Sampled mode: ``'velocity'`` (probability proportional to the speed) or
        ``'random'``.
    seed
        Seed of the sample.
    enforce
        Rebuild the graph even when ``obsp['<basis>_ddhodge']`` holds one (otherwise it is
        reused, as dynamo does).
    cores
        Ignored with a warning: the work runs on the active Dask scheduler.
    rtol, maxiter
        Relative residual and iteration cap of the conjugate-gradient solve.

    Writes
    ------
    obs['<basis>_ddhodge_div']
        Divergence of the graph flow (net outflow) at every cell.
    obs['<basis>_ddhodge_potential']
        The potential.
    obsp['<basis>_ddhodge']
        All cells mode: the antisymmetric flow matrix ``F`` (sparse).
    obs['<basis>_ddhodge_sampled']
        Sampled mode: True for the sampled cells.
    uns['ddhodge_<basis>']
        The solve's record: ``n_components``, ``cg_iterations``, ``residual``, ``n_sampled``.

    Raises
    ------
    ValueError
        No basis, no field or coordinates, an unknown ``adjmethod`` or ``sampling_method``,
        ``X_data`` of the wrong shape.
    """
    if cores not in (1, None):
        warnings.warn(
            "cores is ignored: dynadask computes on the active Dask scheduler", stacklevel=2
        )
    basis, X, fit = _inputs(adata, X_data, layer, basis, VecFld, adjmethod, sampling_method)
    key = f"{basis}_ddhodge"
    N = adata.n_obs
    sampled_mode = n_downsamples is not None and N > int(n_downsamples)
    if sampled_mode:
        how = (int(n_downsamples), up_sampling, sampling_method, seed)
        _sampled(adata, X, fit, basis, n, how, rtol, maxiter)
        return
    if key in adata.obsp and not enforce and adata.obsp[key].shape == (N, N):
        F = adata.obsp[key]
        if isinstance(F, da.Array):
            (F,) = compute(F, desc="stored ddhodge graph")
        edges = kh.edges_from_matrix(F)
        store_graph = False
    else:
        edges = _edges(X, fit, n)
        store_graph = True
    div = edges.divergence()
    solve = kh.graph_potential(edges, div, rtol=rtol, maxiter=maxiter)
    commit(
        adata,
        "ddhodge",
        obs={f"{key}_div": div, f"{key}_potential": solve.potential},
        obsp={key: edges.matrix()} if store_graph else None,
        uns={f"ddhodge_{basis}": _record(solve, N)},
    )


def _inputs(adata, X_data, layer, basis, VecFld, adjmethod, sampling_method):
    if basis is None or layer is not None:
        raise InputError(
            "ddhodge works in an embedding: pass basis= (e.g. 'umap' or 'pca'); the gene-space "
            "graph (basis=None, layer=...) is not offered"
        )
    if adjmethod != "graphize_vecfld":
        raise InputError(
            f"unknown adjmethod {adjmethod!r}: use 'graphize_vecfld' (dynamo 1.5.3's 'naive' "
            "reads uns['transition_matrix'], which no step writes)"
        )
    if sampling_method not in _SAMPLING:
        raise InputError(f"unknown sampling_method {sampling_method!r}: use one of {_SAMPLING}")
    basis = basis[2:] if basis.startswith("X_") else basis
    vf_key = f"VecFld_{basis}"
    if VecFld is None:
        if vf_key not in adata.uns:
            raise MissingKeyError(
                f"no uns[{vf_key!r}]: learn the field first with dyn.vf.VectorField(adata, "
                f"basis={basis!r}), or pass VecFld="
            )
        VecFld = adata.uns[vf_key]
    fit = {"X_ctrl": np.asarray(VecFld["X_ctrl"], dtype=np.float64)}
    fit |= {"C": np.asarray(VecFld["C"], dtype=np.float64), "beta": float(VecFld["beta"])}
    if X_data is not None:
        X = np.asarray(X_data)
        if X.ndim != 2 or X.shape[0] != adata.n_obs:
            raise InputError(
                f"X_data has shape {X.shape}: it must hold one row per cell ({adata.n_obs})"
            )
    else:
        if keys.basis_key(basis) not in adata.obsm:
            raise MissingKeyError(
                f"no obsm['X_{basis}']: compute the embedding first or pass X_data="
            )
        X = adata.obsm[keys.basis_key(basis)]
        dims = VecFld.get("dims")
        if dims is not None:
            X = take_columns(X, np.arange(int(dims)) if np.ndim(dims) == 0 else np.asarray(dims))
    if X.shape[1] != fit["X_ctrl"].shape[1]:
        raise InputError(
            f"the coordinates have {X.shape[1]} columns but the field has "
            f"{fit['X_ctrl'].shape[1]}: refit with dyn.vf.VectorField(adata, basis={basis!r})"
        )
    return basis, X, fit


def _edges(X: Any, fit: dict, n: int) -> kh.EdgeFlow:
    """The kNN graph of ``X`` in its own space with the field's flow on every edge."""
    (x,) = compute(X, desc="ddhodge coordinates")
    x = np.asarray(x, dtype=np.float64)
    k = min(n + 1, x.shape[0])
    idx, _ = knn(x, k, choose_method(x.shape[0], x.shape[1], None))
    nbrs = idx[:, 1:]
    V = gv.quantities(X, fit["X_ctrl"], fit["C"], fit["beta"], ["velocity"])["velocity"]
    flows = gh.knn_flows(X, V, nbrs)
    return kh.edges_from_knn(nbrs, flows)


def _sampled(adata, X, fit, basis, n, how, rtol, maxiter):
    """The sampled mode (dynamo's): solve on ``n_sample`` cells, average onto the others."""
    n_sample, up_sampling, method, seed = how
    key = f"{basis}_ddhodge"
    N = adata.n_obs
    rng = np.random.default_rng(seed)
    if method == "velocity":
        speed = gv.quantities(X, fit["X_ctrl"], fit["C"], fit["beta"], ["speed"])["speed"]
        (s,) = compute(speed, desc="ddhodge sampling")
        cells = rng.choice(N, size=n_sample, p=np.asarray(s) / np.sum(s), replace=False)
    else:
        cells = rng.choice(N, size=n_sample, replace=False)
    if isinstance(X, da.Array):
        ordered = np.sort(cells)
        (xs,) = compute(X[ordered], desc="ddhodge sample")
        xs = np.asarray(xs, dtype=np.float64)[np.searchsorted(ordered, cells)]
    else:
        xs = np.asarray(X, dtype=np.float64)[cells]
    vs = kv.evaluate(xs, fit["X_ctrl"], fit["C"], fit["beta"])
    k = min(n + 1, n_sample)
    idx, _ = knn(xs, k, choose_method(n_sample, xs.shape[1], None))
    nbrs = idx[:, 1:]
    edges = kh.edges_from_knn(nbrs, gh.knn_flows(xs, vs, nbrs))
    div = edges.divergence()
    solve = kh.graph_potential(edges, div, rtol=rtol, maxiter=maxiter)
    values = np.column_stack([div, solve.potential])
    if up_sampling:
        full = gh.upsample(X, xs, values, k)
    else:
        full = np.full((N, 2), np.nan)
    full[cells] = values
    flag = np.zeros(N, dtype=bool)
    flag[cells] = True
    commit(
        adata,
        "ddhodge",
        obs={
            f"{key}_sampled": flag,
            f"{key}_div": full[:, 0],
            f"{key}_potential": full[:, 1],
        },
        uns={f"ddhodge_{basis}": _record(solve, n_sample)},
    )


def _record(solve: kh.PotentialSolve, n_sampled: int) -> dict[str, Any]:
    return {
        "n_components": solve.n_components,
        "cg_iterations": solve.iterations,
        "residual": solve.residual,
        "n_sampled": int(n_sampled),
    }
