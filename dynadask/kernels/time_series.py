"""Expression along a time axis: smoothing, scaling and gene orders (numpy, one array).

What ``dyn.pl.kinetic_curves`` and ``dyn.pl.kinetic_heatmap`` draw once the values are on
the client: cells ordered by a pseudotime are averaged over a window of cells and read at
evenly spaced times; predicted trajectories lose the samples after they stop moving; genes
are scaled to ``[0, 1]`` and ordered by where they peak or by the half-max rule.
"""

from __future__ import annotations

import numpy as np

EDGE_SHARE = 0.05
"""A peak within this share of the points (at least ``EDGE_POINTS``) of either end is not
transient: the gene rises to the end or falls from the start."""

EDGE_POINTS = 5


def moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred mean over ``width`` consecutive rows of ``values`` (``n x g``).

    The window is cut at the ends (the first row averages the first ``width // 2 + 1``
    rows), so the ends are not pulled towards zero.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    width = max(1, min(int(width), n))
    lo = np.clip(np.arange(n) - (width - 1) // 2, 0, n)
    hi = np.clip(np.arange(n) + width // 2 + 1, 0, n)
    csum = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    return (csum[hi] - csum[lo]) / (hi - lo).reshape((-1,) + (1,) * (values.ndim - 1))


def smooth_over_time(
    time: np.ndarray, values: np.ndarray, n_points: int | None, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells' values (``n x g``) averaged along ``time`` and read at ``n_points`` times.

    The cells are sorted by time, each gets the mean of the ``width`` cells around it, and
    the means are interpolated linearly at ``n_points`` times evenly spaced from the
    earliest to the latest cell (``None``: one point per cell, at the cells' times).

    Returns
    -------
    grid
        The times of the points (``n_points``).
    smoothed
        ``g x n_points``.
    order
        The cells sorted by time (ties in their original order).
    """
    time = np.asarray(time, dtype=np.float64)
    order = np.argsort(time, kind="stable")
    t, v = time[order], moving_average(np.asarray(values)[order], width)
    if n_points is None:
        return t, v.T, order
    grid = np.linspace(t[0], t[-1], int(n_points))
    return grid, np.stack([np.interp(grid, t, v[:, j]) for j in range(v.shape[1])]), order


def moving_samples(path: np.ndarray, threshold: float | None) -> np.ndarray:
    """Indices of the samples of a path (``L x g``) that still move.

    The first sample and every one whose squared step from the sample before exceeds
    ``threshold`` (``None``: all samples).
    """
    if threshold is None or len(path) < 2:
        return np.arange(len(path))
    step = np.sum(np.diff(np.asarray(path, dtype=np.float64), axis=0) ** 2, axis=1)
    return np.concatenate([[0], np.flatnonzero(step > threshold) + 1])


def min_max(m: np.ndarray, axis: int | None) -> np.ndarray:
    """Each row (``axis=1``) or column (``axis=0``) shifted and scaled to ``[0, 1]``.

    A constant row or column becomes 0; ``axis=None`` returns ``m`` unchanged.
    """
    m = np.asarray(m, dtype=np.float64)
    if axis is None:
        return m
    lo = np.nanmin(m, axis=axis, keepdims=True)
    span = np.nanmax(m, axis=axis, keepdims=True) - lo
    return np.divide(m - lo, span, out=np.zeros_like(m), where=span > 0)


def peak_order(m: np.ndarray) -> np.ndarray:
    """Rows of ``m`` ordered by the column of their maximum (earliest peak first)."""
    return np.argsort(np.argmax(m, axis=1), kind="stable")


def half_max_order(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (genes along time) sorted into rising, falling and transient groups.

    Each row is scaled to ``[0, 1]``. A row is *transient* when it crosses its mean more
    than once and peaks away from both ends (not within ``max(EDGE_POINTS, EDGE_SHARE * L)``
    points of either); otherwise it *rises* when it ends higher than it starts and *falls*
    when not. Rising and transient rows are ordered by the first point at or above half
    their maximum, falling rows by the first point at or below it.

    Returns
    -------
    order
        Row indices: the rising rows, then the falling, then the transient ones.
    group
        ``'up'``, ``'down'`` or ``'transient'`` for every row (in the input's order).
    """
    s = min_max(m, axis=1)
    n_points = s.shape[1]
    centred = s - s.mean(axis=1, keepdims=True)
    crossings = np.sum(np.diff(np.signbit(centred), axis=1), axis=1)
    peak = np.argmax(s, axis=1)
    edge = max(EDGE_POINTS, int(EDGE_SHARE * n_points))
    inner = (peak >= edge) & (peak < n_points - edge)
    transient = (crossings > 1) & inner
    up = ~transient & (s[:, -1] > s[:, 0])
    group = np.where(transient, "transient", np.where(up, "up", "down"))
    above = np.argmax(s >= 0.5, axis=1)
    below = np.argmax(s <= 0.5, axis=1)
    half = np.where(group == "down", below, above)
    order = [np.flatnonzero(group == g) for g in ("up", "down", "transient")]
    order = [rows[np.argsort(half[rows], kind="stable")] for rows in order]
    return np.concatenate(order).astype(np.intp), group
