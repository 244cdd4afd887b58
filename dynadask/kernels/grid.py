"""Finishing Gaussian grid averages of velocities (pure numpy, any grid shape).

The per-block partial sums come from :func:`dynadask.kernels.embedding.grid_sums` (they add
over row blocks); this turns their total into grid velocities with dynamo's cut-offs.
"""

from __future__ import annotations

import numpy as np


def grid_velocity(sums: np.ndarray, shape: tuple[int, int], min_mass: float | None = None,
                  cut_percentile: float = 5.0) -> np.ndarray:
    """Grid velocities ``(2, ny, nx)`` from summed Gaussian weights.

    ``V = sum w v / max(1, sum w)`` per grid point (x varying fastest in ``sums``). Points whose
    velocity norm is below ``min_mass`` (default ``1e-5``; never above 0.9 of the largest
    norm) or whose weighted mean absolute velocity is in the lowest ``cut_percentile``
    percent are NaN (both components). ``min_mass=0`` and ``cut_percentile=0`` keep all.

    Parameters
    ----------
    sums
        ``(nx * ny, 7)`` totals: ``sum w``, ``sum w v`` (2), ``sum w |v|``, second moments.
    shape
        ``(nx, ny)``.
    min_mass, cut_percentile
        The two cut-offs.

    Returns
    -------
    numpy.ndarray
        ``(2, ny, nx)`` float64.
    """
    nx, ny = shape
    mass = sums[:, 0]
    v = (sums[:, 1:3] / np.maximum(1.0, mass)[:, None]).T.reshape(2, ny, nx).copy()
    norm = np.sqrt((v**2).sum(0))
    threshold = min(1e-5 if min_mass is None else min_mass, norm.max() * 0.9)
    cut = norm < threshold
    if cut_percentile > 0:
        safe = np.where(mass > 0, mass, 1.0)
        length = (sums[:, 3] / safe).reshape(ny, nx)
        cut |= length < np.percentile(length, cut_percentile)
    v[:, cut] = np.nan
    return v
