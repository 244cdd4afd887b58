"""Predicted fates of a batch of initial states: integrate, stitch, resample (numpy only)."""

from __future__ import annotations

from functools import partial

import numpy as np

from . import integrate as ki
from . import trajectory as kt
from . import vectorfield as kv

DIRECTIONS = ("forward", "backward", "both")
STITCHES = ("time", "dynamo")


def gaussian_field(ctrl: np.ndarray, C: np.ndarray, beta: float, scale: float = 1.0):
    """The learned field ``scale * K(x, ctrl) C`` as a function of a batch of states."""
    ctrl = np.asarray(ctrl, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64) * scale
    return partial(_gaussian, ctrl=ctrl, C=C, beta=float(beta))


def _gaussian(Y: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float) -> np.ndarray:
    return kv.evaluate(Y, ctrl, C, beta)


def fate_batch(
    y0: np.ndarray,
    field: ki.Field,
    t_end: float,
    *,
    direction: str = "both",
    interpolation_num: int = 250,
    stitch: str = "time",
    rtol: float = 1e-3,
    atol: float = 1e-6,
    threshold: float | None = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Trajectories of every initial state, resampled uniformly in arc length.

    The states are integrated together (:func:`dynadask.kernels.integrate.integrate`) over
    ``[0, t_end]`` (forward), ``[0, -t_end]`` (backward) or both, with ``max_step =
    t_end / interpolation_num`` as dynamo does. A two-sided trajectory is joined in time
    (the backward branch reversed, then the forward one) and gets ``2 * interpolation_num``
    samples; a backward-only one is sampled in integration order (``t`` decreasing from 0).
    The start of the arc-length order is dropped (the initial state, or for two-sided
    trajectories the far end of the backward branch), as in dynamo. ``stitch='dynamo'``
    measures arc length as dynamo 1.5.3 does, along the backward states with their
    feature axis reversed and their time order kept; the positions are the true ones
    either way, but many samples then fall at ``t = 0``.

    Returns
    -------
    t, X
        ``(n, L)`` times and ``(n, L, d)`` states, ``L`` the number of samples.
    """
    y0 = np.atleast_2d(np.asarray(y0, dtype=np.float64))
    max_step = abs(float(t_end)) / interpolation_num
    opts = {"max_step": max_step, "rtol": rtol, "atol": atol, "threshold": threshold}
    fwd = ki.integrate(field, y0, abs(t_end), **opts) if direction != "backward" else None
    bwd = ki.integrate(field, y0, -abs(t_end), **opts) if direction != "forward" else None
    num = interpolation_num * (2 if direction == "both" else 1)
    n, d = y0.shape
    T = np.zeros((n, num))
    X = np.zeros((n, num, d))
    for b in range(n):
        t, y, f, line = _joined(fwd, bwd, b, stitch)
        T[b], X[b] = kt.resample(t, y, f, num, polyline=line)
    return T, X


def _joined(fwd, bwd, b: int, stitch: str):
    """Increasing times, states, derivatives of path ``b``, and the arc-length polyline.

    The polyline is ``None`` (the states themselves, in time order) for a forward or a
    time-stitched path, the states in integration order for a backward one, and for
    ``stitch='dynamo'``
    the backward states in integration order with their features reversed followed by the
    forward ones (``t = 0`` twice), labelled with the joined times, as dynamo 1.5.3 has it.
    """
    if bwd is None:
        t, y, f = fwd.path(b)
        return t, y, f, None
    tb, yb, fb = bwd.path(b)
    if fwd is None:  # sampled in integration order (t from 0 down), as dynamo does
        return tb[::-1], yb[::-1], fb[::-1], (yb, tb)
    tf, yf, ff = fwd.path(b)
    t = np.concatenate([tb[::-1], tf[1:]])
    y = np.concatenate([yb[::-1], yf[1:]])
    f = np.concatenate([fb[::-1], ff[1:]])
    if stitch != "dynamo":
        return t, y, f, None
    line = (np.concatenate([yb[:, ::-1], yf]), np.concatenate([tb[::-1], tf]))
    return t, y, f, line
