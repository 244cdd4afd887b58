"""dynamo's array-level helpers for cell sampling and the smallest distance between points."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from .._core.compute import compute
from .._core.errors import InputError
from ..kernels import sampling as ks

METHODS = ("random", "velocity", "trn", "kmeans")


def _array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, da.Array):
        x = compute(x, desc=f"read {name}")[0]
    if hasattr(x, "toarray"):
        x = x.toarray()
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"{name} must be a 2-D array of points (got shape {x.shape})")
    return x


def sample(
    arr: Any,
    n: int,
    method: str = "random",
    *,
    X: Any = None,  # noqa: N803 - dynamo's name
    V: Any = None,  # noqa: N803 - dynamo's name
    seed: int = 19491001,
    **kwargs: Any,
) -> np.ndarray:
    """Draw ``n`` elements of ``arr`` (for example cell indices) by one of dynamo's rules.

    - ``'random'``: ``n`` distinct elements, uniformly (``numpy.random.default_rng(seed)``).
    - ``'velocity'``: ``n`` distinct elements, each with probability proportional to the
      norm of its row of ``V``.
    - ``'trn'``: the elements nearest to the ``n`` nodes of a topology representing network
      trained on ``X`` (neural gas; ``kwargs`` ``tmax``, ``li``, ``lf``, ``ei``, ``ef``, ``c``
      as in dynamo).
    - ``'kmeans'``: the elements nearest to ``n`` k-means centroids of ``X`` (seeded with
      ``seed``, where dynamo leaves k-means unseeded).

    Parameters
    ----------
    arr
        The elements (numpy or Dask array, or a list), one per row of ``X`` / ``V``.
    n
        Number of elements to draw.
    method
        ``'random'``, ``'velocity'``, ``'trn'`` or ``'kmeans'``.
    X
        Coordinates of the elements (``'trn'``, ``'kmeans'``), e.g. ``adata.obsm['X_umap']``;
        a Dask array is read into memory (it is cells x a few dimensions).
    V
        Velocities of the elements (``'velocity'``).
    seed
        Seed of every random draw.
    **kwargs
        TRN training parameters.

    Returns
    -------
    numpy.ndarray
        The drawn elements (the TRN and k-means rules may draw an element twice).

    Raises
    ------
    dynadask.InputError
        Unknown method, or the coordinates / velocities it needs are missing.
    """
    if method not in METHODS:
        raise InputError(f"unknown sampling method {method!r}: use one of {METHODS}")
    if isinstance(arr, da.Array):
        arr = compute(arr, desc="read arr")[0]
    arr = np.asarray(arr)
    if not 0 < n <= arr.shape[0]:
        raise InputError(f"n must be between 1 and the number of elements ({arr.shape[0]})")
    if method == "random":
        idx = np.random.default_rng(seed).choice(arr.shape[0], size=n, replace=False)
    elif method == "velocity":
        if V is None:
            raise InputError("method='velocity' needs V (e.g. adata.obsm['velocity_umap'])")
        idx = ks.by_velocity(_check_rows(_array(V, "V"), arr, "V"), n, seed)
    else:
        if X is None:
            raise InputError(f"method={method!r} needs X (e.g. adata.obsm['X_umap'])")
        x = _check_rows(_array(X, "X"), arr, "X")
        idx = ks.by_trn(x, n, seed, **kwargs) if method == "trn" else ks.by_kmeans(x, n, seed)
    return arr[idx]


def _check_rows(x: np.ndarray, arr: np.ndarray, name: str) -> np.ndarray:
    if x.shape[0] != arr.shape[0]:
        raise InputError(
            f"{name} has {x.shape[0]} rows but arr has {arr.shape[0]} elements: pass one row "
            "per element"
        )
    return x


def compute_smallest_distance(
    coords: Any,
    leaf_size: int = 40,
    sample_num: int | None = None,
    *,
    use_unique_coords: bool = True,
    seed: int | None = None,
) -> float:
    """The smallest Euclidean distance between two points of ``coords``.

    Parameters
    ----------
    coords
        ``N x M`` points (numpy or Dask; a Dask array is read, it is cells x a few dimensions).
    leaf_size
        Leaf size of the k-d tree.
    sample_num
        Look for the nearest neighbour of this many randomly chosen points only (all when
        ``None``; the result is then exact).
    use_unique_coords
        Drop duplicate points first (else the answer is 0 when a point repeats).
    seed
        Seed of the draw of ``sample_num`` points (dynamo draws unseeded; ``None`` does too).

    Returns
    -------
    float
        The smallest distance.

    Raises
    ------
    dynadask.InputError
        If ``coords`` is not two-dimensional or holds fewer than two distinct points.
    """
    x = _array(coords, "coords").astype(np.float64)
    if use_unique_coords:
        x = np.unique(x, axis=0)
    if x.shape[0] < 2:
        raise InputError("compute_smallest_distance needs at least two (distinct) points")
    size = x.shape[0] if sample_num is None else min(x.shape[0], int(sample_num))
    query = np.random.default_rng(seed).choice(x.shape[0], size=size, replace=False)
    return ks.smallest_distance(x, leaf_size, query)
