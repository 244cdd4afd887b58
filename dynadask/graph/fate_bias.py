"""Dask graph of the fate bias: one exact kNN index over the cells, paths in blocks as tasks.

The index is fitted once on the cells' coordinates (an embedding: cells x a few dozen
columns, small enough for one process) and shared with the workers. Each cell's distance to
its nearest other cell (whose median scales the distance threshold) is queried row block by
row block of the coordinates; the paths are then cut in blocks, one task per block running
:func:`dynadask.kernels.fate_bias.bias_block`.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy.spatial import cKDTree

from .._core.compute import compute, share
from .._core.errors import InputError
from .._core.settings import get_chunk_policy
from ..kernels import fate_bias as kb
from .blocks import as_rows

PATH_VALUES = 2_000_000
"""Target of ``paths x d x L`` values per task."""


class Index:
    """An exact kNN index over the cells as the kernel's ``query(points, k)`` callable.

    Euclidean distances use a :class:`scipy.spatial.cKDTree` (little overhead per query,
    which matters for the many small queries of a walk back); other metrics use
    :class:`sklearn.neighbors.NearestNeighbors` (k-d tree up to 10 dimensions, else ball tree).

    Parameters
    ----------
    X
        The cells' coordinates (``n x d``).
    metric, metric_kwds
        scikit-learn's distance and its parameters.
    **kwargs
        Further options of :class:`sklearn.neighbors.NearestNeighbors` (they select it).
    """

    def __init__(
        self, X: np.ndarray, metric: str = "euclidean", metric_kwds: dict | None = None, **kwargs
    ) -> None:
        self.n = X.shape[0]
        self.tree = self.nn = None
        if metric == "euclidean" and not metric_kwds and not kwargs:
            self.tree = cKDTree(X)
            return
        from sklearn.neighbors import NearestNeighbors

        algorithm = "ball_tree" if X.shape[1] > 10 else "kd_tree"
        try:
            self.nn = NearestNeighbors(
                algorithm=algorithm, metric=metric, metric_params=metric_kwds, **kwargs
            ).fit(X)
        except (TypeError, ValueError) as err:
            raise InputError(
                f"the kNN search does not accept metric={metric!r}, metric_kwds={metric_kwds!r} "
                f"or options {sorted(kwargs)}: {err}"
            ) from err

    def __call__(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(dist, idx)`` of the ``k`` nearest cells of each point (rows), nearest first."""
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        k = min(k, self.n)
        if self.tree is not None:
            dist, idx = self.tree.query(points, k=k)
            return dist.reshape(len(points), k), idx.reshape(len(points), k)
        return self.nn.kneighbors(points, n_neighbors=k)


def nearest_other(X: Any, index_d: Any) -> np.ndarray:
    """Each cell's distance to its nearest other cell, one query task per row block.

    Parameters
    ----------
    X
        The cells' coordinates (numpy or Dask, ``n x d``).
    index_d
        The shared :class:`Index` over the same cells.
    """
    rows = get_chunk_policy().rows_per_block(X.shape[1] * 8, X.shape[0])
    blocks = as_rows(X, rows).to_delayed().ravel()
    parts = [dask.delayed(_nearest_block)(b, index_d) for b in blocks]
    return np.concatenate(compute(*parts, desc="fate bias: nearest cells"))


def _nearest_block(x: np.ndarray, index: Index) -> np.ndarray:
    dist, _ = index(np.asarray(x, dtype=np.float64), 2)
    return dist[:, -1]


def bias(
    P: Any,
    T: Any,
    X: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    *,
    dist_threshold: float = 1.0,
    metric: str = "euclidean",
    metric_kwds: dict | None = None,
    index_kwargs: dict | None = None,
    source: np.ndarray | None = None,
    paths_per_task: int | None = None,
    **tail_options: Any,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fate bias of every path, one task per block of paths.

    Parameters
    ----------
    P, T
        Paths (``m x d x L``) and their times (``m x L``), numpy or Dask.
    X
        The cells' coordinates (``n x d``, numpy or Dask; read once, for the index).
    codes
        Group code of each cell (``-1``: none).
    n_groups
        Number of groups.
    dist_threshold
        Multiple of the median nearest-cell distance that counts as near the data.
    metric, metric_kwds, index_kwargs
        Options of the kNN index (:class:`Index`).
    source
        Boolean mask of the source groups.
    paths_per_task
        Paths per task (default from :data:`PATH_VALUES`).
    **tail_options
        :func:`dynadask.kernels.fate_bias.tail`'s options.

    Returns
    -------
    shares, confidence, median_dist
        ``m x n_groups`` shares, ``m`` confidences and the median nearest-cell distance.
    """
    if isinstance(X, da.Array):
        (X,) = compute(X, desc="fate bias: cell coordinates")
    X = np.ascontiguousarray(X, dtype=np.float64)
    index = Index(X, metric=metric, metric_kwds=metric_kwds, **(index_kwargs or {}))
    index_d, X_d, codes_d = share([index, X, np.asarray(codes, dtype=np.int64)])
    median = float(np.median(nearest_other(X, index_d)))
    m = P.shape[0]
    per_path = max(1, int(np.prod(P.shape[1:])))
    step = paths_per_task or int(np.clip(PATH_VALUES // per_path, 1, 512))
    threshold = dist_threshold * median
    parts = [
        dask.delayed(kb.bias_block, pure=True)(
            P[s : s + step],
            T[s : s + step],
            index_d,
            X_d,
            codes_d,
            n_groups,
            threshold,
            source=source,
            **tail_options,
        )
        for s in range(0, m, step)
    ]
    done = compute(*parts, desc="fate bias")
    if not done:
        return np.zeros((0, n_groups)), np.zeros(0), median
    return np.vstack([d[0] for d in done]), np.concatenate([d[1] for d in done]), median
