"""Dask graphs of the topography of a learned field: seeds, curves and nearest cells.

The field (control points, coefficients, kernel width) is small, so every task gets it
whole: root finding runs as one task per group of seeds, nullclines as one task per fixed
point, separatrices as one task per saddle. Only two steps read the cells, one row block
per task: their range (and a seeded sample for seeds and the median) and, for each fixed
point, the ``k`` nearest cells (a per-block top-``k`` merged in a tree of fan-in 8).
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
from threadpoolctl import threadpool_limits

from ..kernels import grid as kg
from ..kernels import topography as kt
from .blocks import as_rows, gather_rows

Field = tuple[np.ndarray, np.ndarray, float]
"""``(ctrl, C, beta)`` of a fitted field."""


def extent(X: Any) -> Any:
    """Lazy ``[min, max]`` per column over the finite rows of ``X`` (2 x d)."""
    x = as_rows(X)
    parts = [dask.delayed(kg.finite_range)(b) for b in x.to_delayed().ravel()]
    return dask.delayed(_span)(*parts)


def _span(*ranges: np.ndarray) -> np.ndarray:
    parts = np.array(ranges)
    with np.errstate(invalid="ignore"):
        return np.stack([np.nanmin(parts[:, 0], axis=0), np.nanmax(parts[:, 1], axis=0)])


def sample_rows(X: Any, n: int, seed: int) -> tuple[np.ndarray, Any]:
    """A seeded sample of ``min(n, N)`` rows of ``X`` (sorted positions, lazy rows)."""
    x = as_rows(X)
    N = x.shape[0]
    if n >= N:
        rows = np.arange(N)
    else:
        rows = np.sort(np.random.default_rng(seed).choice(N, size=int(n), replace=False))
    return rows, gather_rows(x, rows)


def roots(
    seeds: np.ndarray,
    signs: np.ndarray,
    field: Field,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    xtol: float,
    ds: float,
    n_steps: int,
    per_task: int = 32,
) -> Any:
    """Lazy ``(X, ok)``: the root reached from every seed, ``per_task`` seeds a task.

    Seeds with ``signs`` 1 (-1) first follow the field forwards (backwards) for ``n_steps``
    steps of length ``ds`` (:func:`dynadask.kernels.topography.flow_ends`).
    """
    seeds = np.atleast_2d(np.asarray(seeds, dtype=np.float64))
    signs = np.asarray(signs, dtype=np.float64)
    parts = [
        dask.delayed(_one_thread(_roots_task), pure=True)(
            seeds[s : s + per_task], signs[s : s + per_task], field, lo, hi, xtol, ds, n_steps
        )
        for s in range(0, seeds.shape[0], per_task)
    ]
    return dask.delayed(_concat_roots)(seeds.shape[1], *parts)


def _one_thread(fn):
    """``fn`` run with one BLAS thread.

    Its products are tiny (a few points x M): on a busy 2-core machine the test of these
    tasks on two worker processes took 107 s with the default BLAS threads, 12.5 s with one.
    """

    def run(*args):
        with threadpool_limits(1):
            return fn(*args)

    run.__name__ = fn.__name__
    return run


def _roots_task(seeds, signs, field, lo, hi, xtol, ds, n_steps):
    ctrl, C, beta = field
    x = seeds.copy()
    flow = signs != 0
    if flow.any():
        x[flow] = kt.flow_ends(x[flow], signs[flow], ctrl, C, beta, lo, hi, ds, n_steps)
    return kt.solve_roots(x, ctrl, C, beta, lo, hi, xtol)


def _concat_roots(d: int, *parts: tuple[np.ndarray, np.ndarray]):
    if not parts:
        return np.empty((0, d)), np.empty(0, dtype=bool)
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def nullclines(
    points: np.ndarray, field: Field, lo: np.ndarray, hi: np.ndarray, *, ds: float, n_steps: int
) -> Any:
    """Lazy ``(NCx, NCy)`` lists of curves through every point, one task per point."""
    ctrl, C, beta = field
    parts = [
        dask.delayed(_one_thread(kt.trace_nullclines), pure=True)(
            p[None, :], ctrl, C, beta, lo, hi, ds, n_steps
        )
        for p in np.atleast_2d(points)
    ]
    return dask.delayed(_concat_curves)(*parts)


def _concat_curves(*parts):
    return [c for p in parts for c in p[0]], [c for p in parts for c in p[1]]


def separatrices(
    saddles: np.ndarray,
    own: np.ndarray,
    targets: np.ndarray,
    field: Field,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    ds: float,
    n_steps: int,
) -> Any:
    """Lazy ``(curves, saddle, kind)`` of the saddles' manifolds, one task per saddle.

    ``own[s]`` is saddle ``s``'s row in ``targets``; ``saddle`` numbers rows of ``saddles``.
    """
    ctrl, C, beta = field
    parts = [
        dask.delayed(_one_thread(kt.trace_manifolds), pure=True)(
            saddles[s : s + 1], ctrl, C, beta, lo, hi, ds, n_steps, targets, own[s : s + 1]
        )
        for s in range(np.atleast_2d(saddles).shape[0])
    ]
    return dask.delayed(_concat_manifolds)(*parts)


def _concat_manifolds(*parts):
    curves = [c for p in parts for c in p[0]]
    saddle = [np.full(len(p[0]), s, dtype=np.int64) for s, p in enumerate(parts)]
    kind = [p[2] for p in parts]
    if not parts:
        return [], np.empty(0, dtype=np.int64), np.empty(0)
    return curves, np.concatenate(saddle), np.concatenate(kind)


def nearest_cells(X: Any, queries: np.ndarray, k: int, split_every: int = 8) -> Any:
    """Lazy ``(distances, rows)`` of the ``k`` cells nearest to each query (Q x k, sorted).

    Each row block gives its own ``k`` nearest (squared distances and row numbers); the
    lists are merged in a tree, so no task holds more than ``split_every`` blocks' lists.
    Rows with a non-finite coordinate are never neighbours.
    """
    x = as_rows(X)
    queries = np.asarray(queries, dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum(x.chunks[0])])
    parts = [
        dask.delayed(kt.nearest_block, pure=True)(b, queries, k, int(offsets[i]))
        for i, b in enumerate(x.to_delayed().ravel())
    ]
    while len(parts) > 1:
        parts = [
            dask.delayed(kt.merge_nearest, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return dask.delayed(_distances)(parts[0])


def _distances(part: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.sqrt(part[0]), part[1]
