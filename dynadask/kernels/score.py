"""Neighbourhood smoothing of a per-cell score (dynamo's ``score_cells`` update rule)."""

from __future__ import annotations

import numba
import numpy as np

from .._core.errors import InputError


@numba.njit(cache=True)
def _sweep(src, dst, knn, beta):  # pragma: no cover - numba
    n, k = knn.shape
    for i in range(n):
        acc = 0.0
        for j in range(1, k):
            acc += src[knn[i, j]]
        dst[i] = beta * src[knn[i, 0]] + (1.0 - beta) * acc / (k - 1)


def smooth_score(score: np.ndarray, knn: np.ndarray, beta: float, iteration: int) -> np.ndarray:
    """Smooth ``score`` over kNN lists (self first): ``beta`` self, ``1 - beta`` neighbour mean.

    The first sweep reads the unsmoothed scores; later sweeps update in place, cell by cell
    in row order, so a cell already sees the new values of the cells before it (as dynamo's
    loop does, its previous and current arrays being one array after the first sweep).
    ``iteration`` 0 returns zeros, as dynamo does.
    """
    knn = np.ascontiguousarray(knn, dtype=np.int64)
    if knn.shape[1] < 2:
        raise InputError("score smoothing needs at least one neighbour besides the cell")
    cur = np.zeros(len(score))
    if iteration < 1:
        return cur
    _sweep(np.asarray(score, dtype=np.float64), cur, knn, float(beta))
    for _ in range(iteration - 1):
        _sweep(cur, cur, knn, float(beta))
    return cur
