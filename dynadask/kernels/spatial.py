"""Spacing of points: the smallest distance between distinct coordinates (numpy / scipy)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def smallest_distance(
    coords: np.ndarray, sample_num: int | None = None, seed: int = 0, leaf_size: int = 40
) -> float:
    """Smallest distance from a sample of points to their nearest distinct neighbour.

    Duplicate coordinates count once. ``sample_num`` points (all when ``None``; a seeded
    sample otherwise) are queried against all distinct points; the result is the smallest
    of their nearest-neighbour distances (0 when there is a single distinct point).
    """
    pts = np.unique(np.asarray(coords, dtype=np.float64), axis=0)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if pts.shape[0] < 2:
        return 0.0
    n = pts.shape[0] if sample_num is None else min(int(sample_num), pts.shape[0])
    rows = np.random.default_rng(seed).choice(pts.shape[0], size=n, replace=False)
    dist, _ = cKDTree(pts, leafsize=leaf_size).query(pts[rows], k=2)
    return float(dist[:, 1].min())
