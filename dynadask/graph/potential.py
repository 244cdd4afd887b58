"""Dask graphs of the potential landscapes: cells by row block, paths and grid points in groups.

The 2-D field (control points, coefficients, kernel width) is small, so every task gets it
whole. Ao's potential is one task per row block of the cells' coordinates; Bhattacharya's
Euler paths and Tang's least-action problems are independent per start / grid point and run
``per_task`` of them a task, each task with one BLAS thread.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from ..kernels import potential as kp
from .blocks import as_rows
from .topography import Field, _one_thread


def ao(X: Any, field: Field, D: np.ndarray) -> Any:
    """Lazy ``(U, S, A)`` of Ao's construction at every row of ``X``, a task per row block."""
    parts = [
        dask.delayed(_one_thread(kp.ao_block), pure=True)(b, *field, D)
        for b in as_rows(X).to_delayed().ravel()
    ]
    return dask.delayed(_concat)(*parts)


def paths(
    starts: np.ndarray, field: Field, dt: float, n_steps: int, keep_every: int, per_task: int = 64
) -> Any:
    """Lazy ``(positions, potentials, last change)`` of the Euler paths from every start."""
    parts = [
        dask.delayed(_one_thread(kp.euler_paths), pure=True)(
            starts[s : s + per_task], *field, dt, n_steps, keep_every
        )
        for s in range(0, starts.shape[0], per_task)
    ]
    return dask.delayed(_concat)(*parts)


def actions(
    points: np.ndarray,
    ref: np.ndarray,
    field: Field,
    Dinv: np.ndarray,
    n_points: int,
    total_time: float,
    tol: float,
    per_task: int = 16,
) -> Any:
    """Lazy least actions from ``ref`` to every row of ``points``."""
    parts = [
        dask.delayed(_one_thread(kp.tang_block), pure=True)(
            points[s : s + per_task], ref, *field, Dinv, n_points, total_time, tol
        )
        for s in range(0, points.shape[0], per_task)
    ]
    return dask.delayed(np.concatenate)(parts)


def _concat(*parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))
