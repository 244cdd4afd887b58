"""Velocity agreement between pairs of cells (the hybrid cell-wise confidence)."""

from __future__ import annotations

import numpy as np


def pair_consensus(v: np.ndarray, i: np.ndarray, j: np.ndarray, step: int = 65_536) -> np.ndarray:
    """``cos(v_i, v_j) * min(|v_i|, |v_j|) / max(|v_i|, |v_j|)`` for each pair of rows.

    NaN where a velocity has zero norm. Pairs are taken ``step`` at a time, so only
    ``step`` x genes products exist at once.
    """
    norms = np.linalg.norm(v, axis=1)
    out = np.empty(len(i))
    for s in range(0, len(i), step):
        a, b = i[s : s + step], j[s : s + step]
        dot = np.einsum("pg,pg->p", v[a], v[b])
        na, nb = norms[a], norms[b]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + step] = dot / (na * nb) * np.minimum(na, nb) / np.maximum(na, nb)
    return out
