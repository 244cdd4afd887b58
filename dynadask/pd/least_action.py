"""``dyn.pd.least_action``: the most probable paths between cell states on the learned field."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import lap as gl
from ..io import commit
from ..kernels import lap as kl
from .fate import _initial

SAMPLE_CELLS = 20_000
"""Cells of the graph the initial paths follow (all cells up to this number)."""


@dataclass(frozen=True)
class LeastActionPath:
    """One optimised path: points ``X`` (``L x d``), times ``t``, cumulative action."""

    X: np.ndarray
    t: np.ndarray
    D: float
    cumulative: np.ndarray

    def get_t(self) -> np.ndarray:
        """The times of the points."""
        return self.t

    def get_dt(self) -> float:
        """The time step."""
        return float(np.mean(np.diff(self.t)))

    def action_t(self) -> np.ndarray:
        """The action from the start to each point."""
        return self.cumulative

    def mfpt(self) -> np.ndarray:
        """``exp(action)`` at each point (dynamo's mean first passage time, Eq. 7)."""
        with np.errstate(over="ignore"):
            return np.exp(self.cumulative)


def least_action(
    adata: ad.AnnData,
    init_cells: Sequence[str] | Sequence[int] | None,
    target_cells: Sequence[str] | Sequence[int] | None,
    *,
    init_states: np.ndarray | None = None,
    target_states: np.ndarray | None = None,
    paired: bool = True,
    basis: str = "pca",
    vf_key: str = "VecFld",
    vecfld: Callable[[np.ndarray], np.ndarray] | None = None,
    adj_key: str | None = None,
    n_points: int = 25,
    init_paths: np.ndarray | Sequence[np.ndarray] | None = None,
    D: float = 10,
    PCs: str | None = None,
    expr_func: Callable[[np.ndarray], np.ndarray] | None = np.expm1,
    add_key: str | None = None,
    EM_steps: int = 2,
    gtol: float = 1e-5,
    maxiter: int | None = None,
    optimizer: str = "L-BFGS-B",
    n_neighbors: int = 30,
    sample_cells: int = SAMPLE_CELLS,
    seed: int = 0,
    paths_per_task: int = 1,
) -> LeastActionPath | list[LeastActionPath]:
    """Find the least-action paths between pairs of cell states on the learned vector field.

    For each (initial, target) pair the path of ``n_points + 2`` points minimising the
    Freidlin-Wentzell action ``S = dt / (2 D) sum_k |(x_{k+1} - x_k) / dt - f(midpoint_k)|^2``
    is found as dynamo does: the initial path follows the fewest-hop path through cells
    between the cells nearest to the two states (``n_points`` points spaced evenly in arc
    length, the states before and after them); then the time step that minimises the action
    of the path, and ``EM_steps`` rounds of quasi-Newton minimisation (L-BFGS-B; dynamo:
    BFGS) over the inner points at a fixed total time
    followed by the best time step again. The action's gradient uses the field's analytic
    Jacobian as vector products (no ``d x d`` matrices); the best time step is a closed form.
    Every pair is a task of the active Dask scheduler.

    Departures from dynamo 1.5.3: the cell graph of the initial paths is, by default, the
    undirected ``n_neighbors``-nearest-neighbour graph in the basis over at most
    ``sample_cells`` cells (a seeded sample above that; dynamo builds a networkx graph over
    ``obsp[adj_key]``, all cells); ``adj_key`` uses a stored graph instead (all cells, ties
    between equally short paths may be broken differently). ``min_lap_t`` (the time scan) is
    not offered. The arrays are stored stacked over the paths (dynamo: lists).

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed) with ``obsm['X_<basis>']`` and
        ``uns['<vf_key>_<basis>']`` (from :func:`dynadask.vf.VectorField`).
    init_cells, target_cells
        Names (or positions) of the initial and target cells.
    init_states, target_states
        States (``n x d``) instead of the cells' coordinates.
    paired
        Pair the i-th initial with the i-th target state (the longer list is trimmed);
        ``False``: every initial with every target state.
    basis
        The embedding the field was learned in.
    vf_key
        The field is ``uns['<vf_key>_<basis>']``.
    vecfld
        A known field ``f(Y)`` (``m x d`` states to derivatives) instead of the learned one;
        its Jacobian by central differences.
    adj_key
        A stored cell graph ``obsp[adj_key]`` (e.g. ``'connectivities'`` or a transition
        matrix) for the initial paths instead of the kNN graph in the basis.
    n_points
        Points of each initial path between the two states.
    init_paths
        Initial paths (one ``L x d`` array for all pairs or one per pair) instead of graph
        paths; their first and last points should be the states.
    D
        Diffusion constant.
    PCs
        Key of the PCA loadings (``'PCs'``) for the paths in gene space (basis ``pca``).
    expr_func
        Applied to ``path Q^T + pca_mean`` for the gene-space paths (``None``: nothing).
    add_key
        Result key (default ``'LAP_<basis>'``).
    EM_steps
        Rounds of path and time-step optimisation.
    gtol, maxiter
        The optimiser's gradient tolerance and iteration cap (default: scipy's).
    optimizer
        ``'L-BFGS-B'`` (limited-memory quasi-Newton) or dynamo's ``'BFGS'`` (scipy's dense
        BFGS, whose ``n^3`` update per iteration dominates in 30-D: ~10x slower there).
    n_neighbors
        Neighbours per cell of the graph of the initial paths.
    sample_cells
        At most this many cells in that graph.
    seed
        Seed of the sample and of the approximate neighbour search.
    paths_per_task
        Pairs optimised one after the other in one task.

    Returns
    -------
    LeastActionPath or list of LeastActionPath
        One per pair (a single object for one pair), as dynamo returns.

    Writes
    ------
    uns['LAP_<basis>']
        ``init_states``, ``init_cells``, ``target_states``, ``target_cells``, ``t`` (``n x
        L``), ``prediction`` (``n x L x d``), ``action`` (cumulative, ``n x L``), ``mftp``
        (``exp(action)``), ``genes`` (``var['use_for_pca']`` names), ``exprs`` (``n x L x
        genes`` for basis ``pca`` with loadings), ``vf_key``, ``parameters`` (``D``,
        ``n_points``, ``EM_steps``, ``init_path``: ``'graph'`` / ``'straight'`` /
        ``'given'`` per pair, ``iterations``, ``converged``, ``cpu_seconds``: processor
        time of each optimisation).

    Raises
    ------
    ValueError
        No basis coordinates or field, unknown cells, bad states or initial paths.
    """
    basis = _basis(adata, basis)
    X = adata.obsm[keys.basis_key(basis)]
    field = _field(adata, basis, vf_key, vecfld)
    names0, y0 = _initial(adata, X, init_cells, init_states)
    names1, y1 = _initial(adata, X, target_cells, target_states)
    starts, ends, names0, names1 = _pairs(y0, y1, names0, names1, paired)
    if n_points < 1:
        raise InputError(f"n_points must be at least 1, not {n_points}")
    if init_paths is None:
        paths, on_graph = _graph_paths(
            adata, X, starts, ends, n_points, adj_key, n_neighbors, sample_cells, seed
        )
        source = np.where(on_graph, "graph", "straight")
    else:
        paths = _given_paths(init_paths, len(starts), X.shape[1])
        source = np.full(len(paths), "given")
    opts = {
        "D": float(D),
        "EM_steps": int(EM_steps),
        "gtol": float(gtol),
        "maxiter": maxiter,
        "method": optimizer,
    }
    results = gl.least_action_paths(paths, field, per_task=paths_per_task, **opts)
    laps = [
        LeastActionPath(
            X=r["path"],
            t=np.arange(len(r["path"])) * r["dt"],
            D=float(D),
            cumulative=r["cumulative"],
        )
        for r in results
    ]
    out = _record(adata, laps, results, starts, ends, names0, names1, vf_key, opts, n_points)
    out["parameters"]["init_path"] = source
    if basis == "pca":
        exprs = _to_genes(adata, np.stack([lap.X for lap in laps]), PCs, expr_func)
        if exprs is not None:
            out["exprs"] = exprs
    commit(adata, "least_action", uns={add_key or f"LAP_{basis}": out})
    return laps[0] if len(laps) == 1 else laps


def _basis(adata: ad.AnnData, basis: str | None) -> str:
    if basis is None:
        raise InputError("pass basis= (e.g. 'pca' or 'umap'): paths live in an embedding")
    basis = basis[2:] if basis.startswith("X_") else basis
    if keys.basis_key(basis) not in adata.obsm:
        raise MissingKeyError(f"no obsm['X_{basis}']: compute the embedding first")
    return basis


def _field(adata: ad.AnnData, basis: str, vf_key: str, vecfld) -> kl.Field:
    if vecfld is not None:
        if not callable(vecfld):
            raise InputError("vecfld must be a function f(Y) of an m x d array of states")
        return kl.CallableField(vecfld)
    key = f"{vf_key}_{basis}"
    vf = adata.uns.get(key)
    if vf is None:
        raise MissingKeyError(
            f"no uns[{key!r}]: learn the field first with dyn.vf.VectorField(adata, "
            f"basis={basis!r}), or pass vecfld="
        )
    return kl.GaussianField(np.asarray(vf["X_ctrl"]), np.asarray(vf["C"]), float(vf["beta"]))


def _pairs(y0, y1, names0, names1, paired):
    if y0.shape[1] != y1.shape[1]:
        raise InputError(f"initial states have {y0.shape[1]} columns, targets {y1.shape[1]}")
    if paired:
        n = min(len(y0), len(y1))
        if len(y0) != len(y1):
            warnings.warn(
                f"{len(y0)} initial and {len(y1)} target states: the longer list is trimmed "
                f"to {n} (pass paired=False for every combination)",
                stacklevel=3,
            )
        return y0[:n], y1[:n], names0[:n], names1[:n]
    i, j = np.divmod(np.arange(len(y0) * len(y1)), len(y1))
    pick = lambda names, k: [names[m] for m in k] if names else []  # noqa: E731
    return y0[i], y1[j], pick(names0, i), pick(names1, j)


def _graph_paths(adata, X, starts, ends, n_points, adj_key, n_neighbors, sample_cells, seed):
    graph = None
    if adj_key is not None:
        if adj_key not in adata.obsp:
            raise MissingKeyError(f"no obsp[{adj_key!r}]: pass adj_key=None for the kNN graph")
        rows = np.arange(adata.n_obs)
        graph = adata.obsp[adj_key]
    elif adata.n_obs > sample_cells:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(adata.n_obs, sample_cells, replace=False))
    else:
        rows = np.arange(adata.n_obs)
    coords = X if len(rows) == adata.n_obs else X[rows]
    if isinstance(coords, da.Array) or isinstance(graph, da.Array):
        coords, graph = compute(coords, graph, desc="least action graph")
    return gl.initial_paths(
        np.asarray(coords), starts, ends, n_points, graph=graph, n_neighbors=n_neighbors, seed=seed
    )


def _given_paths(init_paths, n_pairs: int, d: int) -> list[np.ndarray]:
    if isinstance(init_paths, np.ndarray) and init_paths.ndim == 2:
        paths = [init_paths] * n_pairs
    else:
        paths = [np.asarray(p, dtype=np.float64) for p in init_paths]
    if len(paths) != n_pairs:
        raise InputError(f"{len(paths)} init_paths for {n_pairs} pairs: give one per pair")
    for p in paths:
        if p.ndim != 2 or p.shape[1] != d or p.shape[0] < 3:
            raise InputError(f"an initial path must be L x {d} with L >= 3, got {p.shape}")
    return paths


def _record(adata, laps, results, starts, ends, names0, names1, vf_key, opts, n_points) -> dict:
    genes = adata.var_names.to_numpy()
    if keys.USE_FOR_PCA in adata.var:
        genes = genes[np.asarray(adata.var[keys.USE_FOR_PCA], dtype=bool)]
    return {
        "init_states": starts,
        "init_cells": np.asarray(names0, dtype=str),
        "target_states": ends,
        "target_cells": np.asarray(names1, dtype=str),
        "t": np.stack([lap.t for lap in laps]),
        "prediction": np.stack([lap.X for lap in laps]),
        "action": np.stack([lap.cumulative for lap in laps]),
        "mftp": np.stack([lap.mfpt() for lap in laps]),
        "genes": genes.astype(str),
        "vf_key": vf_key,
        "parameters": {
            "D": opts["D"],
            "n_points": int(n_points),
            "EM_steps": opts["EM_steps"],
            "iterations": np.array([r["iterations"] for r in results]),
            "converged": np.array([r["converged"] for r in results]),
            "cpu_seconds": np.array([r["cpu_seconds"] for r in results]),
        },
    }


def _to_genes(adata, P: np.ndarray, PCs: str | None, expr_func) -> np.ndarray | None:
    """``expr_func(path Q^T + mean)`` for every path (``n x L x genes``), or ``None``."""
    key = PCs or "PCs"
    if key not in adata.uns:
        warnings.warn(
            f"no uns[{key!r}]: the paths are not mapped back to genes", UserWarning, stacklevel=3
        )
        return None
    Q = np.asarray(adata.uns[key], dtype=np.float64)
    d = P.shape[2]
    if Q.ndim != 2 or Q.shape[1] < d:
        raise InputError(f"uns[{key!r}] has shape {Q.shape}: need genes x at least {d}")
    mean = np.asarray(adata.uns.get("pca_mean", 0.0), dtype=np.float64)
    if mean.ndim == 1 and mean.shape[0] != Q.shape[0]:
        raise InputError(f"uns['pca_mean'] has {mean.shape[0]} values, the loadings {Q.shape[0]}")
    exprs = np.einsum("nld,gd->nlg", P, Q[:, :d]) + mean
    if expr_func is not None:
        exprs = expr_func(exprs)
    return exprs.astype(np.float32)
