"""Fate bias of predicted trajectories: where each path ends among the observed cells.

dynamo's rule (``dynamo.prediction.fate.fate_bias``), trajectory by trajectory:

1. the *tail*: the last ``max(s, 10)`` samples, where ``s`` counts the trailing segments
   whose mean speed ``|x_{k+1} - x_k| / (t_{k+1} - t_k)`` is at most the
   ``speed_percentile``-th percentile of the path's speeds (or given time indices, or the
   last fraction of the samples);
2. the ``k`` nearest cells (``k = 30``, the nearest first) of every tail sample. While no
   distance is below ``dist_threshold * median_dist`` (``median_dist``: the median over the
   cells of the distance to their nearest other cell), the tail moves one sample back and
   only the nearest cell of each sample is kept; a tail that reaches the start gives NaN;
3. the neighbours found are *diffused* one step: the ``k`` nearest cells of each of them;
   the fate probabilities are the shares of each group among those cells;
4. ``confidence = 1 - (far + walked) / (len + walked)``, with ``far`` the distances above
   the threshold in the last search, ``len`` their number and ``walked`` the steps back.

The search is a callable ``query(points, k) -> (dist, idx)`` (nearest first), so the kernel
holds no index type of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Query = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]

N_NEIGHBORS = 30
"""Cells looked up per sample and per diffused cell (dynamo: 29 others plus self)."""

MIN_TAIL = 10
"""At least this many samples at the end of a path are used (dynamo's constant)."""


def tail(
    path: np.ndarray,
    t: np.ndarray,
    *,
    inds: np.ndarray | None = None,
    use_sink_percentage: bool = True,
    step_used_percentage: float | None = None,
    speed_percentile: float = 5,
) -> np.ndarray:
    """Time indices of the samples a path's fate is read from.

    Parameters
    ----------
    path
        ``d x L`` positions.
    t
        ``L`` times.
    inds
        Given indices (used as they are).
    use_sink_percentage
        The slow tail: the last ``max(s, 10)`` samples, ``s`` the trailing segments no faster
        than the ``speed_percentile``-th percentile of the path's segment speeds. Segments
        with a zero time step are left out of the percentile (compared with it, one that
        moves counts as fast, one that does not as slow); when no segment is faster, every
        sample is used.
    step_used_percentage
        Without the slow tail: the last fraction of the samples.
    speed_percentile
        Percentile of the segment speeds that separates slow from moving.

    Returns
    -------
    numpy.ndarray
        Increasing indices into the ``L`` samples.
    """
    n = path.shape[1]
    if inds is not None:
        return np.asarray(inds, dtype=np.int64)
    if use_sink_percentage:
        with np.errstate(divide="ignore", invalid="ignore"):
            speed = np.linalg.norm(np.diff(path, axis=1), axis=0) / np.diff(t)
        finite = speed[np.isfinite(speed)]
        if finite.size == 0:
            return np.arange(n)
        cut = np.percentile(finite, speed_percentile)
        with np.errstate(invalid="ignore"):
            moving = np.flatnonzero(speed[::-1] > cut)
        if moving.size == 0:
            return np.arange(n)
        return np.arange(n - max(int(moving[0]), MIN_TAIL), n)
    if step_used_percentage is not None:
        return np.arange(int(n - step_used_percentage * n), n)
    return np.arange(n)


def path_bias(
    path: np.ndarray,
    indices: np.ndarray,
    query: Query,
    X: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    threshold: float,
    source: np.ndarray | None = None,
    k: int = N_NEIGHBORS,
) -> tuple[np.ndarray, float]:
    """Group shares (``n_groups``, NaN when the tail never comes near a cell) and confidence.

    Parameters
    ----------
    path
        ``d x L`` positions.
    indices
        Tail indices (:func:`tail`).
    query
        ``query(points, k) -> (dist, idx)``, nearest first, over the cells ``X``.
    X
        The cells' coordinates (``n x d``), for the diffusion step.
    codes
        Group code of every cell (``-1``: no group; counted in the total, in no group).
    n_groups
        Number of groups.
    threshold
        ``dist_threshold * median_dist``.
    source
        Boolean mask of the source groups: their share moves to the largest other group
        when it is strictly between 0 and 1.
    k
        Neighbours per search.
    """
    indices = np.asarray(indices, dtype=np.int64)
    dist, idx = query(path[:, indices].T, k)
    walked = 0
    while True:
        close = np.asarray(dist).ravel() < threshold
        if close.any():
            break
        walked += 1
        if np.any(indices - 1 < 0):
            return np.full(n_groups, np.nan), 0.0
        indices = indices - 1
        dist, idx = query(path[:, indices].T, k)
        dist, idx = dist[:, 0], idx[:, 0]
    _, reached = query(X[np.asarray(idx).ravel()], k)
    reached = np.asarray(reached).ravel()
    found = codes[reached]
    prob = np.bincount(found[found >= 0], minlength=n_groups).astype(np.float64) / reached.size
    if source is not None and source.any():
        share = prob[source].sum()
        if 0 < share < 1:
            prob[source] = 0.0
            prob[int(np.argmax(prob))] += share
    confidence = 1.0 - (np.count_nonzero(~close) + walked) / (close.size + walked)
    return prob, float(confidence)


def bias_block(
    P: np.ndarray,
    T: np.ndarray,
    query: Query,
    X: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    threshold: float,
    *,
    source: np.ndarray | None = None,
    k: int = N_NEIGHBORS,
    **tail_options,
) -> tuple[np.ndarray, np.ndarray]:
    """Fate bias of a block of paths: ``(b x n_groups)`` shares and ``b`` confidences.

    ``P`` holds the paths (``b x d x L``), ``T`` their times (``b x L``); the other arguments
    are those of :func:`path_bias` and ``tail_options`` those of :func:`tail`.
    """
    P = np.asarray(P, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    probs = np.empty((P.shape[0], n_groups))
    conf = np.empty(P.shape[0])
    for b in range(P.shape[0]):
        indices = tail(P[b], T[b], **tail_options)
        probs[b], conf[b] = path_bias(
            P[b], indices, query, X, codes, n_groups, threshold, source, k
        )
    return probs, conf
