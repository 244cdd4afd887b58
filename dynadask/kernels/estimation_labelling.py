"""Per-gene fits of labelling time courses (vectorised over genes, tiny inputs).

After the map-reduce, a labelling experiment is summarised per gene by a handful of
numbers per labelling time: mean labelled RNA, or the slope ``K`` of labelled on total RNA.
The kinetic curves below are fitted to those summaries.

Closed forms (``tau``: labelling or chase time; ``*`` steady-state level):

- labelled RNA without splicing, from 0: ``n(tau) = (alpha / gamma) (1 - e^{-gamma tau})``;
- labelled unspliced: ``ul(tau) = (alpha / beta) (1 - e^{-beta tau})`` whatever the cell's
  state (labelled species start at 0 and see the same synthesis rate);
- labelled spliced: ``sl(tau) = (alpha / gamma) k_s(tau)`` with
  ``k_s = 1 - (beta e^{-gamma tau} - gamma e^{-beta tau}) / (beta - gamma)``;
- chase: ``l(tau) = l0 e^{-gamma tau}``; spliced labelled with unspliced input
  ``sl(tau) = sl0 e^{-gamma tau} + beta ul0 (e^{-gamma tau} - e^{-beta tau}) / (beta - gamma)``.

Each has one non-linear rate and one linear amplitude: :func:`profile_fit` solves the
amplitude in closed form and the rate by a log-grid search refined by golden sections.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
RATE_BOUNDS = (1e-4, 1e3)


def synthesis(tau: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """``1 - e^{-rate tau}`` (labelled fraction of a one-step species)."""
    return -np.expm1(-rate * tau)


def decay(tau: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """``e^{-rate tau}``."""
    return np.exp(-rate * tau)


def spliced_labelled(beta: np.ndarray) -> ShapeFn:
    """``k_s(tau; gamma)`` for a fixed ``beta`` (labelled fraction of spliced RNA)."""

    def shape(tau: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        b = np.broadcast_to(beta, np.broadcast_shapes(np.shape(beta), np.shape(gamma)))
        g = np.where(np.abs(gamma - b) < 1e-6 * b, gamma * (1 + 1e-6), gamma)
        return 1 - (b * np.exp(-g * tau) - g * np.exp(-b * tau)) / (b - g)

    return shape


def spliced_chase(beta: np.ndarray, ul0: np.ndarray) -> tuple[ShapeFn, ShapeFn]:
    """Shape and known offset of labelled spliced RNA in a chase (``sl0`` is the amplitude)."""

    def offset(tau: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        b = np.broadcast_to(beta, np.broadcast_shapes(np.shape(beta), np.shape(gamma)))
        g = np.where(np.abs(gamma - b) < 1e-6 * b, gamma * (1 + 1e-6), gamma)
        return b * ul0 * (np.exp(-g * tau) - np.exp(-b * tau)) / (b - g)

    return decay, offset


def _sse(tau, y, w, rate, shape, offset, fixed=None):
    """Weighted SSE and best amplitude for rates ``rate`` (genes x m) against ``y`` (genes x T)."""
    f = shape(tau[None, None, :], rate[..., None])
    target = y[:, None, :] - (offset(tau[None, None, :], rate[..., None]) if offset else 0.0)
    fw = f * w[:, None, :]
    if fixed is not None:
        amp = np.full(f.shape[:-1], float(fixed))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            amp = (fw * target).sum(-1) / (fw * f).sum(-1)
        amp = np.where(np.isfinite(amp), np.maximum(amp, 0.0), 0.0)
    res = target - amp[..., None] * f
    return (w[:, None, :] * res * res).sum(-1), amp


def profile_fit(
    tau: np.ndarray,
    y: np.ndarray,
    shape: ShapeFn,
    *,
    weights: np.ndarray | None = None,
    offset: ShapeFn | None = None,
    bounds: tuple[float, float] = RATE_BOUNDS,
    n_grid: int = 241,
    n_refine: int = 60,
    amplitude: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``y_j ~ amp * shape(tau_j; rate) (+ offset(tau_j; rate))`` for every gene.

    Parameters
    ----------
    tau
        ``T`` times.
    y
        ``genes x T`` summaries (NaN entries are ignored).
    shape, offset
        Vectorised ``fn(tau, rate)`` (broadcasting ``rate[..., None]`` against ``tau``);
        shape functions whose parameters are per gene take their ``genes`` axis first.
    weights
        ``genes x T`` (or ``T``) weights, e.g. cells per time.
    bounds
        Search range of the rate.
    amplitude
        Fix the amplitude (e.g. 1 for labelled fractions) instead of fitting it.

    Returns
    -------
    rate, amp, r2
        Per gene; ``r2`` is the weighted coefficient of determination of the fit.
    """
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    w = np.broadcast_to(np.ones(tau.size) if weights is None else weights, y.shape).copy()
    w[~np.isfinite(y)] = 0.0
    y = np.nan_to_num(y)
    grid = np.exp(np.linspace(np.log(bounds[0]), np.log(bounds[1]), n_grid))
    sse, _ = _sse(tau, y, w, np.broadcast_to(grid, (y.shape[0], n_grid)), shape, offset, amplitude)
    best = np.nanargmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    lo = np.log(grid[np.maximum(best - 1, 0)])
    hi = np.log(grid[np.minimum(best + 1, n_grid - 1)])
    rate = _golden(
        lambda r: _sse(tau, y, w, r[:, None], shape, offset, amplitude)[0][:, 0], lo, hi, n_refine
    )
    sse, amp = _sse(tau, y, w, rate[:, None], shape, offset, amplitude)
    mean = (w * y).sum(-1) / np.maximum(w.sum(-1), 1e-300)
    tot = (w * (y - mean[:, None]) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1 - sse[:, 0] / tot
    return rate, amp[:, 0], r2


def _golden(
    fn: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray, n: int
) -> np.ndarray:
    """Vectorised golden-section minimisation of ``fn(exp(x))`` over ``[lo, hi]``."""
    g = (np.sqrt(5) - 1) / 2
    a, b = lo.copy(), hi.copy()
    for _ in range(n):
        c, d = b - g * (b - a), a + g * (b - a)
        left = fn(np.exp(c)) <= fn(np.exp(d))
        b = np.where(left, d, b)
        a = np.where(left, a, c)
    return np.exp((a + b) / 2)


def rate_from_fraction(k: np.ndarray, tau: np.ndarray | float) -> np.ndarray:
    """``-log(1 - K) / tau`` with ``K`` clipped to [0, 1 - 1e-3] (a labelled fraction)."""
    kc = np.clip(k, 0.0, 1 - 1e-3)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.log1p(-kc) / tau


def slope_through_origin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of ``y`` on ``x`` through 0 along the last axis, and its r2."""
    x = np.broadcast_to(x, y.shape)
    ok = np.isfinite(y) & np.isfinite(x)
    xx, yy = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = (xx * yy).sum(-1) / (xx * xx).sum(-1)
        n = ok.sum(-1)
        ym = yy.sum(-1) / n
        res = ((yy - k[..., None] * xx) ** 2 * ok).sum(-1)
        tot = (((yy - ym[..., None]) ** 2) * ok).sum(-1)
        return k, 1 - res / tot
