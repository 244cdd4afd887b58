"""Locality orders of the cells: nearby cells get nearby row numbers.

The one home of the order computation, used by ``dyn.tl.locality_order`` (from an AnnData)
and by ``dyn.io.reorder`` (which takes the graph or the embedding it holds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import reverse_cuthill_mckee

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError

METHODS = ("graph", "kdtree", "auto")


def graph_order(graph: Any) -> np.ndarray:
    """Reverse Cuthill-McKee order of a kNN graph (scipy sparse, dense, or Dask of either).

    The graph is made symmetric (``symmetric_mode=False``), so each cell's neighbours lie
    within a narrow band of rows.
    """
    if isinstance(graph, da.Array):
        graph = compute(graph, desc="read kNN graph")[0]
    g = sparse.csr_matrix(graph)
    return np.asarray(reverse_cuthill_mckee(g, symmetric_mode=False), dtype=np.int64)


def kdtree_order(x: np.ndarray, leaf_size: int = 64) -> np.ndarray:
    """Leaf order of a k-d tree on ``x`` (each split halves a node at its widest coordinate)."""
    from sklearn.neighbors import KDTree  # heavy (about 2 s): only for this method

    tree = KDTree(x, leaf_size=leaf_size)
    return np.asarray(tree.get_arrays()[1], dtype=np.int64)


def resolve(method: str, has_graph: bool) -> str:
    """``'auto'`` becomes ``'graph'`` when a kNN graph exists, else ``'kdtree'``."""
    if method == "auto":
        return "graph" if has_graph else "kdtree"
    return method


def locality_order(
    graph: Any | None,
    embedding: Callable[[], np.ndarray],
    method: str = "auto",
    leaf_size: int = 64,
) -> np.ndarray:
    """A permutation of the cells from their kNN ``graph`` or their ``embedding``.

    Parameters
    ----------
    graph
        The kNN graph (``obsp['connectivities']``), ``None`` when there is none.
    embedding
        Returns the cells x dimensions embedding (called only for ``'kdtree'``).
    method
        ``'graph'``, ``'kdtree'`` or ``'auto'`` (``'graph'`` when ``graph`` is given).
    leaf_size
        Cells per leaf of the k-d tree.

    Returns
    -------
    numpy.ndarray
        ``n_cells`` positions (int64): row ``r`` of the reordered data is cell ``order[r]``.

    Raises
    ------
    MissingKeyError
        ``'graph'`` without a graph.
    InputError
        An unknown method.
    """
    method = resolve(method, graph is not None)
    if method == "graph":
        if graph is None:
            raise MissingKeyError(
                "obsp['connectivities'] is missing: run dyn.tl.neighbors(adata) "
                "first or use method='kdtree'"
            )
        return graph_order(graph)
    if method != "kdtree":
        raise InputError(f"unknown method {method!r}: use 'graph', 'kdtree' or 'auto'")
    return kdtree_order(embedding(), leaf_size)
