"""Finish kinetic estimates from per-gene sums (the "aggregate" step of the map-reduce).

Inputs are dictionaries of per-gene sums produced by
:func:`dynadask.kernels.kinetics.product_sums` (any leading shape, e.g. strata x genes):
``n, s, u, ss, su, uu`` over all cells and the same names prefixed ``x:`` over the extreme
cells. Every function here is vectorised over genes and works in float64.

Steady-state fits (``u`` on ``s``):

- :func:`ols_slope` — least squares through the origin or with an intercept;
- :func:`gmm_slope` — generalised method of moments with first and second moments,
  ``u ~ k s`` and ``u + 2 us ~ k (2 ss - s)``, each equation weighted by the inverse
  variance of its residuals from its own least-squares fit (dynamo's weighting);
- :func:`negbin_slope` — negative binomial moments: ``u ~ k s`` and
  ``k^2 ss - k u - phi u^2 ~ 0`` with dispersion ``phi`` from ``ss - s ~ phi s^2``.

:func:`goodness` gives dynamo's ``gamma_r2`` and ``gamma_logLL`` over all cells.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Sums = Mapping[str, np.ndarray]

STEADY_TERMS: dict[str, tuple[str, ...]] = {
    "n": (), "s": ("s",), "u": ("u",), "ss": ("s", "s"), "su": ("s", "u"), "uu": ("u", "u"),
    "x:n": (), "x:s": ("s",), "x:u": ("u",), "x:ss": ("s", "s"), "x:su": ("s", "u"),
    "x:uu": ("u", "u"),
}  # fmt: skip
GMM_TERMS: dict[str, tuple[str, ...]] = {
    "x:x2": ("x2",), "x:y2": ("y2",), "x:x2x2": ("x2", "x2"), "x:x2y2": ("x2", "y2"),
    "x:y2y2": ("y2", "y2"),
}  # fmt: skip
NEGBIN_TERMS: dict[str, tuple[str, ...]] = {
    "s3": ("s", "s", "s"), "s4": ("s", "s", "s", "s"), "s2v": ("s", "s", "v"),
    "x:v": ("v",), "x:vv": ("v", "v"), "x:vu": ("v", "u"), "x:vuu": ("v", "u", "u"),
    "x:uuu": ("u", "u", "u"), "x:uuuu": ("u", "u", "u", "u"),
}  # fmt: skip
# derived layers: y2 = u + 2 us, x2 = 2 ss - s (names of the second-moment layers: us, v)
DERIVED = {"x2": ((2.0, "v"), (-1.0, "s")), "y2": ((1.0, "u"), (2.0, "us"))}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def ols_slope(
    st: Sums, intercept: bool = False, prefix: str = "x:"
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope (and intercept) of ``u`` on ``s`` over the chosen cells.

    Returns
    -------
    k, b
        Slope and intercept (0 without intercept).
    """
    p = prefix
    if not intercept:
        return _ratio(st[p + "su"], st[p + "ss"]), np.zeros(np.shape(st[p + "ss"]))
    n = st[p + "n"]
    xm, ym = _ratio(st[p + "s"], n), _ratio(st[p + "u"], n)
    cov = _ratio(st[p + "su"], n) - xm * ym
    var = _ratio(st[p + "ss"], n) - xm * xm
    k = _ratio(cov, var)
    return k, ym - k * xm


def residual_variance(n, sx, sy, sxx, sxy, syy, k):
    """Population variance of ``y - k x`` from sums (float64, any shape)."""
    mean_sq = _ratio(syy - 2 * k * sxy + k * k * sxx, n)
    mean = _ratio(sy - k * sx, n)
    return mean_sq - mean * mean


def gmm_slope(st: Sums) -> np.ndarray:
    """GMM slope from the first and second moments over the extreme cells (NaN if undefined)."""
    n = st["x:n"]
    k1 = _ratio(st["x:su"], st["x:ss"])
    k2 = _ratio(st["x:x2y2"], st["x:x2x2"])
    v1 = residual_variance(n, st["x:s"], st["x:u"], st["x:ss"], st["x:su"], st["x:uu"], k1)
    v2 = residual_variance(n, st["x:x2"], st["x:y2"], st["x:x2x2"], st["x:x2y2"], st["x:y2y2"], k2)
    w1, w2 = _pinv_diag(v1, v2)
    num = w1 * st["x:su"] + w2 * st["x:x2y2"]
    den = w1 * st["x:ss"] + w2 * st["x:x2x2"]
    return np.where(den == 0, np.nan, _ratio(num, den))


def _pinv_diag(v1: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-inverse of ``diag(v1, v2)``: entries below 1e-15 of the largest give 0."""
    v1, v2 = np.nan_to_num(v1, nan=0.0), np.nan_to_num(v2, nan=0.0)
    big = np.maximum(np.abs(v1), np.abs(v2))
    cut = 1e-15 * big
    w1 = np.where(np.abs(v1) > cut, _ratio(1.0, v1), 0.0)
    w2 = np.where(np.abs(v2) > cut, _ratio(1.0, v2), 0.0)
    return w1, w2


def dispersion(st: Sums) -> np.ndarray:
    """Negative-binomial dispersion ``phi`` from ``ss - s ~ phi s^2`` over all cells."""
    return _ratio(st["s2v"] - st["s3"], st["s4"])


def negbin_slope(st: Sums) -> tuple[np.ndarray, np.ndarray]:
    """Negative binomial slope: least squares of both moment equations, started at OLS.

    The objective is a quartic in ``k``; the minimum reached by descending from the OLS
    slope over ``k >= 0`` is returned, as a local optimiser started there would find.

    Returns
    -------
    k, phi
    """
    phi = dispersion(st)
    k0 = _ratio(st["x:su"], st["x:ss"])
    coef = _negbin_quartic(st, phi, k0)
    k = np.array(
        [_descend_quartic(c, k) for c, k in zip(coef.reshape(-1, 5), np.ravel(k0), strict=True)]
    )
    return k.reshape(np.shape(k0)), phi


def _negbin_quartic(st: Sums, phi: np.ndarray, k0: np.ndarray) -> np.ndarray:
    """Coefficients (k^4 … k^0) of the normalised sum of squared residuals."""
    n = st["x:n"]
    # g1 = k s - u ; g2 = k^2 v - k u - phi u^2
    g1 = np.stack([0 * n, 0 * n, st["x:ss"], -2 * st["x:su"], st["x:uu"]], -1)
    g2 = np.stack(
        [
            st["x:vv"],
            -2 * st["x:vu"],
            st["x:uu"] - 2 * phi * st["x:vuu"],
            2 * phi * st["x:uuu"],
            phi * phi * st["x:uuuu"],
        ],
        -1,
    )
    m1 = _ratio(k0 * st["x:s"] - st["x:u"], n)
    m2 = _ratio(k0 * k0 * st["x:v"] - k0 * st["x:u"] - phi * st["x:uu"], n)
    q1 = np.polyval(np.moveaxis(g1, -1, 0), k0) / np.where(n > 0, n, 1) - m1 * m1
    q2 = np.polyval(np.moveaxis(g2, -1, 0), k0) / np.where(n > 0, n, 1) - m2 * m2
    s1 = np.maximum(np.sqrt(np.maximum(q1, 0)), 1e-3)
    s2 = np.maximum(np.sqrt(np.maximum(q2, 0)), 1e-3)
    return g1 / (s1 * s1)[..., None] + g2 / (s2 * s2)[..., None]


def _descend_quartic(coef: np.ndarray, k0: float) -> float:
    if not (np.all(np.isfinite(coef)) and np.isfinite(k0)):
        return np.nan
    k0 = max(k0, 0.0)
    d = np.polyder(coef)
    roots = np.roots(d) if np.any(d != 0) else np.array([])
    crit = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
    slope = np.polyval(d, k0)
    if slope > 0:
        left = crit[crit < k0]
        return float(left[-1]) if left.size and left[-1] > 0 else 0.0
    if slope < 0:
        right = crit[crit > k0]
        return float(right[0]) if right.size else np.inf
    return float(k0)


def goodness(st: Sums, k: np.ndarray, b: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The ``gamma_r2`` and ``gamma_logLL`` of ``u ~ k s + b`` over all cells.

    ``r2 = 1 - sum (u - k s - b)^2 / sum (u - mean u)^2`` (non-finite values become 0, as
    dynamo stores them). The log-likelihood is that of Gaussian residuals ``u - k s`` whose
    variance is taken as their plain sum of squares: ``-n/2 log(2 pi) - n/2 log(SS) - 1/2``.
    """
    n, su, ss, uu, s, u = (st[key] for key in ("n", "su", "ss", "uu", "s", "u"))
    res = uu - 2 * k * su + k * k * ss - 2 * b * u + 2 * k * b * s + n * b * b
    tot = uu - _ratio(u * u, n)
    r2 = 1 - _ratio(res, tot)
    r2 = np.where(np.isfinite(r2), r2, 0.0)
    res0 = uu - 2 * k * su + k * k * ss
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = -n / 2 * np.log(2 * np.pi) - n / 2 * np.log(res0) - 0.5 * _ratio(res0, res0)
    return r2, ll


def percentile_ranks(n: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order-statistic ranks and weight of numpy's linear percentile ``q`` of ``n`` values."""
    n = np.asarray(n, dtype=np.int64)
    h = (np.maximum(n, 1) - 1) * (q / 100.0)
    r = np.floor(h).astype(np.int64)
    return r, np.minimum(r + 1, np.maximum(n - 1, 0)), h - r


def bin_of_rank(hist: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin holding the value of 0-based ``rank``, and the count of values in earlier bins."""
    cum = np.cumsum(hist, axis=-1)
    b = np.minimum((cum <= rank[..., None]).sum(axis=-1), hist.shape[-1] - 1)
    before = (
        np.take_along_axis(cum, b[..., None], -1)[..., 0]
        - np.take_along_axis(hist, b[..., None], -1)[..., 0]
    )
    return b, before


def order_statistic(collected: tuple, before: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The value of each key's ``rank`` from its collected ``(keys, values, counts)``.

    ``before`` counts the key's values below the collected window. Keys without collected
    values give NaN.
    """
    keys, values, counts = collected
    shape = np.shape(rank)
    local = (np.ravel(rank) - np.ravel(before)).astype(np.int64)
    all_keys = np.arange(local.size)
    first = np.searchsorted(keys, all_keys, side="left")
    has = first < np.searchsorted(keys, all_keys, side="right")
    gcum = np.cumsum(counts)
    start = np.where(first > 0, gcum[np.maximum(first - 1, 0)], 0) if gcum.size else 0 * first
    pos = np.searchsorted(gcum, start + local, side="right") if gcum.size else first
    ok = has & (pos < values.size)
    out = np.full(local.size, np.nan)
    out[ok] = values[pos[ok]]
    return out.reshape(shape)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation between order statistics, rounded as numpy.percentile does."""
    d = b - a
    return np.where(t >= 0.5, b - d * (1 - t), a + d * t)


def score_grid(ext: Mapping[str, np.ndarray], n_bins: int) -> dict[str, object]:
    """Scales, lower edge and bin width of the extremeness score per stratum and gene."""
    scale = {"s": np.clip(ext["s_max"], 1e-3, None), "u": np.clip(ext["u_max"], 1e-3, None)}
    lo = ext["s_min"] / scale["s"] + ext["u_min"] / scale["u"]
    hi = ext["s_max"] / scale["s"] + ext["u_max"] / scale["u"]
    ok = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    width = np.where(ok, (hi - lo) / n_bins, 1.0)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    return {"scale": scale, "lo": lo, "width": width}
