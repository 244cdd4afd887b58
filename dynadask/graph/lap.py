"""Dask graph of least-action paths: initial paths on a sparse cell graph, pairs as tasks."""

from __future__ import annotations

import time
from typing import Any

import dask
import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from .._core.compute import compute
from ..kernels import lap as kl
from . import neighbors as gn


def initial_paths(
    coords: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    n_points: int,
    *,
    graph: sparse.spmatrix | None = None,
    n_neighbors: int = 30,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Initial paths from each start to its end through cells, as dynamo builds them.

    The cells nearest to a start and to its end are joined by the fewest-hop path in a
    sparse graph of the cells (``graph``, else the ``n_neighbors``-nearest-neighbour graph of
    ``coords``, undirected); ``n_points`` points evenly spaced in arc length along that
    path, with the start before them and the end after them (``n_points + 2`` points).
    Pairs whose cells are not connected get the straight line with as many points.

    Parameters
    ----------
    coords
        Coordinates of the graph's cells (all cells, or a sample of them).
    starts, ends
        ``pairs x d`` end points.
    n_points
        Points taken along each graph path.
    graph
        A cells x cells sparse adjacency over the rows of ``coords`` (e.g. a stored kNN or
        transition graph); its weights are ignored.
    n_neighbors
        Neighbours per cell of the graph built when ``graph`` is ``None``.
    seed
        Seed of the approximate neighbour search (above 5,000 cells).

    Returns
    -------
    paths, on_graph
        One ``(n_points + 2) x d`` array per pair; whether each came from the graph.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if graph is None:
        k = min(n_neighbors + 1, coords.shape[0])
        method = gn.choose_method(coords.shape[0], coords.shape[1], None)
        idx, _ = gn.knn(coords, k, method, seed=seed)
        graph = kl.knn_graph(idx)
    else:
        graph = sparse.csr_matrix(graph)
        graph = (abs(graph) + abs(graph).T).tocsr()
    tree = cKDTree(coords)
    src = tree.query(starts)[1]
    tgt = tree.query(ends)[1]
    walks = kl.hop_paths(graph, np.asarray(src), np.asarray(tgt))
    paths, found = [], np.zeros(len(walks), dtype=bool)
    for i, walk in enumerate(walks):
        if walk is None:
            paths.append(kl.straight_path(starts[i], ends[i], n_points + 1))
            continue
        found[i] = True
        inner = kl.arclength_points(coords[walk], n_points)
        paths.append(np.vstack([starts[i], inner, ends[i]]))
    return paths, found


def _optimise_batch(paths: list[np.ndarray], field: kl.Field, opts: dict) -> list[dict]:
    out = []
    for p in paths:
        start = time.process_time()
        res = kl.optimise_path(p, field, **opts)
        res["cumulative"] = kl.cumulative_action(res["path"], field, res["dt"], opts["D"])
        res["cpu_seconds"] = time.process_time() - start
        out.append(res)
    return out


def least_action_paths(
    paths: list[np.ndarray], field: Any, *, per_task: int = 1, **opts: Any
) -> list[dict]:
    """Optimise every initial path, ``per_task`` paths per task of the active scheduler.

    Parameters
    ----------
    paths
        Initial paths (``L x d`` each); their first and last points stay fixed.
    field
        A :class:`dynadask.kernels.lap.GaussianField` or ``CallableField`` (picklable).
    per_task
        Paths optimised one after the other in one task.
    **opts
        :func:`dynadask.kernels.lap.optimise_path`'s options (``D``, ``EM_steps``, ``gtol``,
        ``maxiter``).

    Returns
    -------
    list of dict
        Per path: ``path``, ``dt``, ``action``, ``cumulative``, ``iterations``,
        ``converged``, ``cpu_seconds`` (processor time of the optimisation).
    """
    per_task = max(1, int(per_task))
    field_d = dask.delayed(field, traverse=False)
    parts = [
        dask.delayed(_optimise_batch, pure=True)(paths[s : s + per_task], field_d, opts)
        for s in range(0, len(paths), per_task)
    ]
    done = compute(*parts, desc="least action paths")
    return [r for part in done for r in part]
