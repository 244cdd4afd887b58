"""Dask graph of fate prediction: batches of initial states integrated as parallel tasks."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from .._core.compute import compute
from ..kernels import fate as kf

BATCH_VALUES = 4_000_000
"""Target of ``batch x steps x d`` stored per task (about 100 MiB of path history)."""


def batch_size(n_dims: int, interpolation_num: int) -> int:
    """Initial states per task: a path history near :data:`BATCH_VALUES` values, 16-2,000."""
    steps = 3 * max(interpolation_num, 1)  # both directions, with room for smaller steps
    return int(np.clip(BATCH_VALUES // (steps * max(n_dims, 1) * 3), 16, 2000))


def fates(
    y0: np.ndarray, field: Any, t_end: float, *, batch: int | None = None, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Resampled trajectories of every initial state, one task per batch of states.

    Parameters
    ----------
    y0
        Initial states (``n x d``).
    field
        ``field(Y) -> dY/dt`` on a batch of states (picklable, e.g.
        :func:`dynadask.kernels.fate.gaussian_field`).
    t_end
        Integration time.
    batch
        States per task (default :func:`batch_size`).
    **options
        :func:`dynadask.kernels.fate.fate_batch`'s options.

    Returns
    -------
    t, X
        ``(n, L)`` times and ``(n, d, L)`` states (dynamo's layout of ``prediction``).
        Each batch is copied into the preallocated output and dropped, so the client holds
        the result and the finished batches once, never a second copy of the whole.
    """
    y0 = np.atleast_2d(np.asarray(y0, dtype=np.float64))
    n, d = y0.shape
    batch = batch or batch_size(d, options.get("interpolation_num", 250))
    field_d = dask.delayed(field, traverse=False)
    parts = [
        dask.delayed(kf.fate_batch, pure=True)(y0[s : s + batch], field_d, t_end, **options)
        for s in range(0, n, batch)
    ]
    done = list(compute(*parts, desc="fate integration"))
    length = done[0][0].shape[1]
    t = np.empty((n, length))
    X = np.empty((n, d, length))
    for i, s in enumerate(range(0, n, batch)):
        t_b, X_b = done[i]
        done[i] = None  # release the batch once copied
        t[s : s + len(t_b)] = t_b
        X[s : s + len(t_b)] = X_b.transpose(0, 2, 1)
    return t, X
