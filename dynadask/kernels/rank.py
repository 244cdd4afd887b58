"""Kernels of the gene rankings on one row block: per-group statistics, gene-wise Jacobians.

A ranking pools a cells x genes array per cell group. Every pooling offered (mean, sum,
max, min, of the values or of their absolute values) follows from a few per-group
statistics that add up (sums, counts) or combine by maximum and minimum over row blocks,
so a block never needs another block: :func:`group_stats` makes them for one block and
:func:`merge_stats` combines two blocks' statistics.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .._core.errors import InputError
from .vectorfield import _centred, sq_distances

STATS = ("sum", "abs_sum", "max", "min", "abs_max", "abs_min", "count")
"""What :func:`group_stats` returns for each group (``count`` per group, the rest per column)."""


def dense_block(block) -> np.ndarray:
    """A block as a float64 numpy array with non-finite values set to 0 (dynamo's rule)."""
    x = block.toarray() if sparse.issparse(block) else np.asarray(block)
    x = np.array(x, dtype=np.float64, copy=True)
    x[~np.isfinite(x)] = 0.0
    return x


def group_stats(block, codes: np.ndarray, *, n_groups: int, dtype=None) -> dict[str, np.ndarray]:
    """Per-group statistics of a block's columns.

    Parameters
    ----------
    block
        Rows of the array (numpy or CSR); NaN and infinite values count as 0, as dynamo's
        rankings treat them.
    codes
        Group of each row (``0 .. n_groups - 1``; a negative code leaves the row out).
    n_groups
        Number of groups.
    dtype
        Cast the values to this dtype first (dynamo's ``dtype`` option), then to float64.

    Returns
    -------
    dict
        ``sum``, ``abs_sum``, ``max``, ``min``, ``abs_max``, ``abs_min`` (``n_groups x
        n_cols`` float64; max/min are -inf/+inf for a group without rows) and ``count``
        (``n_groups``).
    """
    x = dense_block(block)
    if dtype is not None:
        x = x.astype(dtype).astype(np.float64)
    codes = np.asarray(codes).ravel().astype(np.int64)
    keep = codes >= 0
    x, codes = x[keep], codes[keep]
    ax = np.abs(x)
    n_cols = x.shape[1]
    out = {
        "sum": np.zeros((n_groups, n_cols)),
        "abs_sum": np.zeros((n_groups, n_cols)),
        "max": np.full((n_groups, n_cols), -np.inf),
        "min": np.full((n_groups, n_cols), np.inf),
        "abs_max": np.full((n_groups, n_cols), -np.inf),
        "abs_min": np.full((n_groups, n_cols), np.inf),
        "count": np.bincount(codes, minlength=n_groups).astype(np.float64),
    }
    if codes.size:
        order = np.argsort(codes, kind="stable")
        x, ax, codes = x[order], ax[order], codes[order]
        starts = np.flatnonzero(np.diff(codes, prepend=-1))
        present = codes[starts]
        for key, values, ufunc in (
            ("sum", x, np.add),
            ("abs_sum", ax, np.add),
            ("max", x, np.maximum),
            ("min", x, np.minimum),
            ("abs_max", ax, np.maximum),
            ("abs_min", ax, np.minimum),
        ):
            out[key][present] = ufunc.reduceat(values, starts, axis=0)
    return out


def merge_stats(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Combine the statistics of several blocks (sums add; maxima and minima compare)."""
    out = {k: np.array(v, copy=True) for k, v in parts[0].items()}
    for p in parts[1:]:
        for k in ("sum", "abs_sum", "count"):
            out[k] += p[k]
        for k in ("max", "abs_max"):
            np.maximum(out[k], p[k], out=out[k])
        for k in ("min", "abs_min"):
            np.minimum(out[k], p[k], out=out[k])
    return out


def pool(stats: dict[str, np.ndarray], how: str, absolute: bool) -> np.ndarray:
    """Pooled values per group (``n_groups x n_cols``) from merged statistics.

    ``how`` is ``'mean'``, ``'sum'``, ``'max'`` or ``'min'``; ``absolute`` pools ``|x|``.
    A group without rows gets NaN.
    """
    pre = "abs_" if absolute else ""
    count = stats["count"][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        if how == "mean":
            out = stats[pre + "sum"] / count
        elif how == "sum":
            out = stats[pre + "sum"].copy()
        elif how in ("max", "min"):
            out = stats[pre + how].copy()
        else:
            raise InputError(f"unknown pooling {how!r}: use 'mean', 'sum', 'max' or 'min'")
    out[np.broadcast_to(count == 0, out.shape)] = np.nan
    return out


def column_abs_max(stats: dict[str, np.ndarray]) -> np.ndarray:
    """``max |x|`` of each column over every row in the statistics (0 when there are none)."""
    m = np.max(stats["abs_max"], axis=0) if stats["abs_max"].size else np.zeros(0)
    return np.where(np.isfinite(m), m, 0.0)


def jacobian_diagonal(
    x: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float, Q: np.ndarray
) -> np.ndarray:
    """Diagonal gene-wise Jacobians ``q_g^T J(x) q_g`` of the field at the rows of ``x``.

    ``J`` is the field's Jacobian in its own space and ``q_g`` the row of the loadings ``Q``
    (genes x d) that takes a gene back to that space (for a gene-space field, a unit
    vector), so the result is ``d f_g / d x_g`` for every gene. With ``J = -2 beta (f x^T -
    sum_m K_m C_m c_m^T)`` on centred coordinates it is, for all genes at once,
    ``-2 beta ((f Q^T) * (x Q^T) - K ((C Q^T) * (c Q^T)))``: ``O(n M g)``, no ``d x d``
    matrix per point.

    Returns
    -------
    numpy.ndarray
        ``n x g`` float64.
    """
    xc, c = _centred(x, ctrl)
    Q = np.asarray(Q, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    K = np.exp(-beta * sq_distances(xc, c))
    f = K @ C
    return -2.0 * beta * ((f @ Q.T) * (xc @ Q.T) - K @ ((C @ Q.T) * (c @ Q.T)))
