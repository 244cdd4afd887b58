"""Which cell groups a predicted trajectory passes through, and when (numpy).

A trajectory passes a group when more than ``min_points`` of its points lie within a distance
threshold of their nearest cell and that cell belongs to the group (dynamo's state graph).
"""

from __future__ import annotations

import numpy as np


def kept_points(Y: np.ndarray, tol: float) -> np.ndarray:
    """Mask of the points kept: a point closer than ``tol`` to the one before it is dropped."""
    keep = np.ones(len(Y), dtype=bool)
    if len(Y) > 1:
        keep[1:] = np.linalg.norm(np.diff(Y, axis=0), axis=1) >= tol
    return keep


def passes(
    codes: np.ndarray,
    dist: np.ndarray,
    t: np.ndarray,
    threshold: float,
    n_groups: int,
    min_points: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The groups one trajectory passes and its mean time in each (NaN where not passed).

    Parameters
    ----------
    codes, dist, t
        For each kept point: its nearest cell's group code, the distance to that cell and
        the point's time.
    threshold
        Largest distance of a point counted.
    n_groups
        Number of groups.
    min_points
        A group is passed when more than this many counted points fall in it.

    Returns
    -------
    passed, mean_t
        ``(n_groups,)`` booleans and mean times.
    """
    near = (dist < threshold) & (codes >= 0)
    counts = np.bincount(codes[near], minlength=n_groups)
    sums = np.bincount(codes[near], weights=t[near], minlength=n_groups)
    passed = counts > min_points
    mean_t = np.full(n_groups, np.nan)
    mean_t[passed] = sums[passed] / counts[passed]
    return passed, mean_t
