"""Resampling of integrated trajectories: oscillating tails cut, uniform arc length (numpy).

dynamo resamples each predicted trajectory in three moves, reproduced here: the tail is cut
while the spectra of its last two thirds agree (a trajectory circling an attractor repeats
itself), times are then spread uniformly in arc length along the remaining polyline (the
first sample, the start, is dropped), and the positions at those times come from the
integrator's continuous solution.
"""

from __future__ import annotations

import numpy as np

from .integrate import hermite


def _spectrum(x: np.ndarray) -> np.ndarray:
    """Amplitudes of each column's Fourier modes without the constant one, concatenated."""
    n = x.shape[0]
    amp = np.abs(np.fft.rfft(x, axis=0)) / n * 2
    return amp[1 : n // 2].T.ravel()


def repeat_cut(x: np.ndarray, tol: float, max_iter: int = 100, parts: int = 3) -> int:
    """Length of ``x`` (points x d) kept once a periodic tail is cut.

    While the Fourier amplitudes of the last two of ``parts`` equal divisions differ by at
    most ``tol`` (norm over the amplitudes divided by their number), the last division is
    dropped; at most ``max_iter`` times.
    """
    end = x.shape[0]
    for _ in range(max_iter):
        width = end // parts
        a = _spectrum(x[(parts - 2) * width : (parts - 1) * width])
        b = _spectrum(x[(parts - 1) * width : parts * width])
        if a.size == 0 or np.linalg.norm(a - b) / a.size > tol:
            break
        end = (parts - 1) * width
        if end == 0:
            break
    return end


def arclength_times(x: np.ndarray, t: np.ndarray, num: int) -> np.ndarray:
    """``num`` times spaced uniformly in arc length along the polyline ``x`` (start dropped)."""
    seg = np.linalg.norm(np.diff(x, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    z = np.linspace(0.0, arc[-1], num + 1)
    return np.interp(z, arc, t)[1:]


def resample(
    t: np.ndarray,
    y: np.ndarray,
    f: np.ndarray,
    num: int,
    polyline: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Times and states of one trajectory resampled at ``num`` points of uniform arc length.

    Parameters
    ----------
    t, y, f
        Increasing times, states and field values of the accepted steps.
    num
        Samples returned.
    polyline
        Points whose arc length is measured and their times (default ``(y, t)``; dynamo's
        stitching of a two-sided trajectory passes other ones).

    Returns
    -------
    t, states
        ``(num,)`` and ``(num, d)``.
    """
    x, labels = (y, t) if polyline is None else polyline
    tol = float(np.mean(x.max(axis=0) - x.min(axis=0))) / 1000
    end = repeat_cut(x, tol)
    times = arclength_times(x[:end], labels[:end], num)
    return times, hermite(t, y, f, times)


def frame_times(T: np.ndarray, n_steps: int, logspace: bool = False) -> np.ndarray:
    """``n_steps`` times at which stored trajectories are shown, spanning their time range.

    Linear: the sorted distinct times of all trajectories (and 0) picked at ``n_steps``
    evenly spaced ranks, so frames are dense where samples are. ``logspace``: from 0 to the
    largest time evenly in ``log(1 + t)``.
    """
    flat = np.unique(np.concatenate([[0.0], T[np.isfinite(T)].ravel()]))
    if logspace:
        return np.logspace(0.0, np.log10(max(flat[-1], 0.0) + 1.0), n_steps) - 1.0
    return flat[np.linspace(0, flat.size - 1, n_steps).astype(np.int64)]


def positions_at(P: np.ndarray, T: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Where each trajectory is at ``times``: ``(frames, n, d)`` by linear interpolation.

    ``P`` is ``n x d x L`` (states), ``T`` is ``n x L`` (their times, in any order). Before a
    trajectory's first time it sits at its first state, after its last at its last state
    (an integration that stopped early has come to rest).
    """
    n, d, _ = P.shape
    out = np.empty((times.size, n, d))
    for b in range(n):
        order = np.argsort(T[b], kind="stable")
        tb = T[b][order]
        for k in range(d):
            out[:, b, k] = np.interp(times, tb, P[b, k][order])
    return out
