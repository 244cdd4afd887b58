"""Batched explicit Runge-Kutta integration of an autonomous field (numpy only).

Many trajectories advance together: every stage evaluates the field once on the stacked
states of all unfinished trajectories (one ``batch x d`` call, e.g. one kernel GEMM), while
each trajectory keeps its own time, step size and accept/reject decision. The method is
the Dormand-Prince 5(4) pair with the step-size control of scipy's ``RK45`` (same tableau,
error norm, safety factor, growth limits, initial step rule and ``max_step``), so a batch
reproduces ``solve_ivp(..., method='RK45')`` run on each state alone. A trajectory stops at
``t_bound``, when its step would fall below the floating-point floor, or at a terminal
event: every component of the field below ``threshold`` in magnitude at either end of an
accepted step (dynamo's event; the step's end point is kept instead of locating the switch
inside the step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Field = Callable[[np.ndarray], np.ndarray]

# Dormand & Prince (1980) 5(4) coefficients
_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
_A = [
    np.array([]),
    np.array([1 / 5]),
    np.array([3 / 40, 9 / 40]),
    np.array([44 / 45, -56 / 15, 32 / 9]),
    np.array([19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729]),
    np.array([9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]),
]
_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
_E = np.array([-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
_EXPONENT = -1 / 5


@dataclass
class Solution:
    """Accepted points of each trajectory: ``t[b][:n[b]]``, ``y[b][:n[b]]``, ``f[b][:n[b]]``."""

    t: np.ndarray
    y: np.ndarray
    f: np.ndarray
    n: np.ndarray
    status: np.ndarray
    """0 reached ``t_bound``, 1 terminal event, -1 step too small or iteration cap."""

    def path(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Times, states and field values of trajectory ``b``."""
        m = int(self.n[b])
        return self.t[b, :m], self.y[b, :m], self.f[b, :m]


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(x * x, axis=1))


def initial_step(
    field: Field,
    y0: np.ndarray,
    f0: np.ndarray,
    direction: float,
    t_span: float,
    max_step: float,
    rtol: float,
    atol: float,
) -> np.ndarray:
    """Hairer, Norsett and Wanner's first-step estimate for every row (scipy's rule)."""
    scale = atol + np.abs(y0) * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.maximum(d1, 1e-300))
    h0 = np.minimum(h0, t_span)
    f1 = field(y0 + (h0 * direction)[:, None] * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    small = (d1 <= 1e-15) & (d2 <= 1e-15)
    h1 = np.where(
        small,
        np.maximum(1e-6, h0 * 1e-3),
        (0.01 / np.maximum(np.maximum(d1, d2), 1e-300)) ** (1 / 5),
    )
    return np.minimum.reduce([100 * h0, h1, np.full_like(h0, t_span), np.full_like(h0, max_step)])


def _slow(f: np.ndarray, threshold: float) -> np.ndarray:
    return np.all(np.abs(f) < threshold, axis=1)


def integrate(
    field: Field,
    y0: np.ndarray,
    t_bound: float,
    *,
    max_step: float = np.inf,
    rtol: float = 1e-3,
    atol: float = 1e-6,
    threshold: float | None = 1e-5,
    max_iter: int = 100_000,
) -> Solution:
    """Integrate ``dy/dt = field(y)`` from ``t = 0`` to ``t_bound`` (either sign) for every row.

    Parameters
    ----------
    field
        ``field(Y)`` for a ``m x d`` array of states returns their ``m x d`` derivatives.
    y0
        Initial states (``n x d``).
    t_bound
        End time; negative integrates backward.
    max_step
        Largest step (absolute time).
    rtol, atol
        Local error tolerances.
    threshold
        Terminal event level (``None``: no event).
    max_iter
        Cap on step attempts of the batch.

    Returns
    -------
    Solution
    """
    y0 = np.atleast_2d(np.asarray(y0, dtype=np.float64))
    n, d = y0.shape
    direction = 1.0 if t_bound >= 0 else -1.0
    span = abs(float(t_bound))
    cap = 64
    T = np.zeros((n, cap))
    Y = np.zeros((n, cap, d))
    F = np.zeros((n, cap, d))
    count = np.ones(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.int64)
    t = np.zeros(n)
    y = y0.copy()
    f = field(y)
    Y[:, 0], F[:, 0] = y, f
    if span == 0:
        return Solution(T[:, :1], Y[:, :1], F[:, :1], count, status)
    h_abs = initial_step(field, y, f, direction, span, max_step, rtol, atol)
    rejected = np.zeros(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    slow = _slow(f, threshold) if threshold is not None else np.zeros(n, dtype=bool)
    K = np.zeros((7, n, d))
    for _ in range(max_iter):
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        ta, ya, fa = t[a], y[a], f[a]
        min_step = 10 * np.abs(np.nextafter(ta, direction * np.inf) - ta)
        ha = np.where(h_abs[a] > max_step, max_step, np.maximum(h_abs[a], min_step))
        t_new = ta + ha * direction
        t_new = np.where(direction * (t_new - t_bound) > 0, t_bound, t_new)
        h = t_new - ta
        ka = K[:, : a.size]
        ka[0] = fa
        for s in range(1, 6):
            dy = np.tensordot(_A[s], ka[:s], axes=(0, 0)) * h[:, None]
            ka[s] = field(ya + dy)
        y_new = ya + h[:, None] * np.tensordot(_B, ka[:6], axes=(0, 0))
        f_new = field(y_new)
        ka[6] = f_new
        scale = atol + np.maximum(np.abs(ya), np.abs(y_new)) * rtol
        err = _rms(np.tensordot(_E, ka, axes=(0, 0)) * h[:, None] / scale)
        ok = err < 1
        with np.errstate(divide="ignore"):
            grow = np.where(
                err == 0, _MAX_FACTOR, np.minimum(_MAX_FACTOR, _SAFETY * err**_EXPONENT)
            )
            shrink = np.maximum(_MIN_FACTOR, _SAFETY * err**_EXPONENT)
        grow = np.where(rejected[a], np.minimum(1.0, grow), grow)
        h_next = np.abs(h) * np.where(ok, grow, shrink)
        h_abs[a] = h_next
        rejected[a] = ~ok
        # a rejected step that falls below the floor ends the trajectory (scipy: failure)
        too_small = ~ok & (h_next < min_step)
        status[a[too_small]] = -1
        active[a[too_small]] = False
        acc = a[ok]
        if acc.size:
            need = int(count[acc].max()) + 1
            if need > cap:
                cap = max(2 * cap, need)
                T, Y, F = _grow(T, cap), _grow(Y, cap), _grow(F, cap)
            pos = count[acc]
            T[acc, pos], Y[acc, pos], F[acc, pos] = t_new[ok], y_new[ok], f_new[ok]
            count[acc] += 1
            t[acc], y[acc], f[acc] = t_new[ok], y_new[ok], f_new[ok]
            done = direction * (t_new[ok] - t_bound) >= 0
            if threshold is not None:
                slow_new = _slow(f_new[ok], threshold)
                event = (slow[acc] | slow_new) & ~done
                slow[acc] = slow_new
                status[acc[event]] = 1
                done = done | event
            active[acc[done]] = False
    else:
        status[active] = -1
    m = int(count.max())
    return Solution(T[:, :m], Y[:, :m], F[:, :m], count, status)


def _grow(x: np.ndarray, cap: int) -> np.ndarray:
    out = np.zeros((x.shape[0], cap) + x.shape[2:])
    out[:, : x.shape[1]] = x
    return out


def hermite(t: np.ndarray, y: np.ndarray, f: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation of a path with derivatives at increasing times ``t``.

    ``query`` outside ``[t[0], t[-1]]`` is clamped to the ends.
    """
    query = np.clip(np.asarray(query, dtype=np.float64), t[0], t[-1])
    if t.size == 1:
        return np.repeat(y[:1], query.size, axis=0)
    i = np.clip(np.searchsorted(t, query, side="right") - 1, 0, t.size - 2)
    h = t[i + 1] - t[i]
    s = np.where(h > 0, (query - t[i]) / np.where(h > 0, h, 1.0), 0.0)[:, None]
    h = h[:, None]
    h00 = (1 + 2 * s) * (1 - s) ** 2
    h10 = s * (1 - s) ** 2
    h01 = s * s * (3 - 2 * s)
    h11 = s * s * (s - 1)
    return h00 * y[i] + h10 * h * f[i] + h01 * y[i + 1] + h11 * h * f[i + 1]
