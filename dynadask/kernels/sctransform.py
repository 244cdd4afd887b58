"""sctransform's numerical pieces: per-block sums, the per-gene fits and the residuals.

The model (Hafemeister & Satija's regularised negative binomial, as dynamo 1.5.3 runs it):
each gene's counts follow ``NB(mu, theta)`` with ``log mu = b0 + b1 log10(umi)``, ``umi``
the cell's total over the modelled genes. The fit on a cell sample gives each gene's
``(b0, b1)`` by Poisson maximum likelihood and then ``theta`` by a few Newton steps on the
negative-binomial likelihood; the parameters are smoothed against the gene's log10
geometric mean by local linear kernel regression (Gaussian kernel, bandwidth from the
Improved Sheather-Jones rule times ``bw_adjust``) after outlier genes are set aside; the
residuals ``(x - mu) / sqrt(mu + mu^2 / theta)`` are computed for every cell.

Everything here works on one row block or on per-gene arrays; no Dask, no AnnData.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import fft, optimize, sparse, special

from .._core.errors import InputError

EPS = np.finfo(float).eps
MIN_THETA = 1e-7
ISJ_GRID = 1024  # grid points of the Improved Sheather-Jones bandwidth
KDE_GRID = 512  # grid points of the gene-density estimate behind the step-1 gene draw
THETA_STEPS = 9  # Newton steps at most in the theta estimate (dynamo: limit 10, it + 1 < limit)
OUTLIER_SCORE = 10.0  # robust z-score beyond which a gene's parameter is an outlier
EVAL_CHUNK = 1024  # evaluation points per batch in the kernel regression


def _csr(block, genes: np.ndarray | None = None) -> sparse.csr_matrix:
    csr = sparse.csr_matrix(block, dtype=np.float64)
    if genes is not None:
        csr = csr[:, np.asarray(genes)]
    csr.sum_duplicates()
    csr.eliminate_zeros()
    return csr


def gene_sums(block, *, genes: np.ndarray | None = None, eps: float = 1.0) -> dict:
    """Per-gene count totals and sums of ``log(x + eps)`` over the non-zero entries.

    The second gives dynamo's geometric mean ``exp(sum / n_cells) - eps`` (zeros count
    as ``log(1) = 0`` whatever ``eps``). Returns ``sum``, ``logsum`` (genes) and ``n`` (the
    block's cells), float64.
    """
    csr = _csr(block, genes)
    logged = csr.copy()
    logged.data = np.log(logged.data + eps)
    return {
        "sum": np.asarray(csr.sum(axis=0)).ravel(),
        "logsum": np.asarray(logged.sum(axis=0)).ravel(),
        "n": np.array([float(csr.shape[0])]),
    }


def log10_gmean(logsum: np.ndarray, n: float, eps: float = 1.0) -> np.ndarray:
    """``log10`` of the geometric mean from :func:`gene_sums`' ``logsum`` over ``n`` cells."""
    return np.log10(np.exp(np.asarray(logsum, dtype=np.float64) / float(n)) - eps)


CELL_ATTRIBUTES = ("umi", "log_umi", "gene", "log_gene", "umi_per_gene", "log_umi_per_gene")


def cell_attributes(block, *, genes: np.ndarray | None = None) -> np.ndarray:
    """Per cell over ``genes``: the :data:`CELL_ATTRIBUTES` columns, ``(cells, 6)``.

    Total counts (umi), genes detected, their ratio and each one's log10 (a cell without
    counts gets -inf and NaN, as dynamo's arithmetic gives).
    """
    csr = _csr(block, genes)
    umi = np.asarray(csr.sum(axis=1)).ravel()
    gene = np.diff(csr.indptr).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = umi / gene
        return np.column_stack([umi, np.log10(umi), gene, np.log10(gene), ratio, np.log10(ratio)])


def fit_poisson(y: np.ndarray, covariate: np.ndarray, *, max_iter: int = 100) -> np.ndarray:
    """Poisson maximum likelihood of ``log mu = b0 + b1 covariate`` for every column of ``y``.

    Newton's method on all genes at once (the covariate centred for conditioning), from
    ``b0 = log mean``, ``b1 = 0``, halving a gene's step while its likelihood falls.
    Returns ``(2, genes)``: intercepts and slopes.
    """
    y = np.asarray(y, dtype=np.float64)
    c = np.asarray(covariate, dtype=np.float64).ravel()
    centre = c.mean()
    z = (c - centre)[:, None]
    mean = y.mean(axis=0)
    if np.any(mean <= 0):
        raise InputError("every gene fitted by sctransform needs counts in the sampled cells")
    a = np.vstack([np.log(mean), np.zeros(y.shape[1])])

    current = loglik_subset(y, z, a)
    active = np.ones(y.shape[1], dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        p = a[:, idx]
        mu = np.exp(p[0] + z * p[1])
        r = y[:, idx] - mu
        g0, g1 = r.sum(axis=0), (z * r).sum(axis=0)
        h00, h01, h11 = mu.sum(axis=0), (z * mu).sum(axis=0), (z * z * mu).sum(axis=0)
        det = h00 * h11 - h01 * h01
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.vstack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det])
        step[:, ~np.isfinite(det) | (det <= 0)] = 0.0
        scale = np.ones(idx.size)
        new = p + step
        value = loglik_subset(y[:, idx], z, new)
        for _ in range(30):  # step halving where the likelihood fell
            worse = value < current[idx] - 1e-12 * np.abs(current[idx])
            if not worse.any():
                break
            scale[worse] /= 2
            new[:, worse] = p[:, worse] + step[:, worse] * scale[worse]
            value[worse] = loglik_subset(y[:, idx[worse]], z, new[:, worse])
        a[:, idx] = new
        current[idx] = value
        size = np.abs(step * scale).max(axis=0)
        active[idx] = size > 1e-10 * (1 + np.abs(new).max(axis=0))
    return np.vstack([a[0] - a[1] * centre, a[1]])


def loglik_subset(y: np.ndarray, z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Poisson log-likelihood (without ``log y!``) of each column at parameters ``p``."""
    eta = p[0] + z * p[1]
    return (y * eta - np.exp(eta)).sum(axis=0)


@numba.njit(cache=True, nogil=True)
def _theta_sums(y: np.ndarray, mu: np.ndarray, theta: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Five sums over the cells for each gene ``j`` in ``idx``, with ``t = theta[k]``.

    ``log(mu + t)``, ``1 / (mu + t)``, ``1 / (mu + t)^2``, ``y / (mu + t)`` and
    ``y / (mu + t)^2``, in that order (rows of the result).
    """
    out = np.zeros((5, idx.size))
    for k in range(idx.size):
        j = idx[k]
        t = theta[k]
        a = b = c = d = e = 0.0
        for i in range(y.shape[0]):
            s = mu[i, j] + t
            inv = 1.0 / s
            a += np.log(s)
            b += inv
            c += inv * inv
            yi = y[i, j]
            if yi != 0.0:
                d += yi * inv
                e += yi * inv * inv
        out[0, k], out[1, k], out[2, k], out[3, k], out[4, k] = a, b, c, d, e
    return out


def _count_pairs(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (column, non-zero value) pairs of ``y`` and how often each occurs."""
    cols = np.nonzero(y.T)[0]  # column by column
    values = y.T[y.T != 0]
    order = np.lexsort((values, cols))
    cols, values = cols[order], values[order]
    first = np.ones(cols.size, dtype=bool)
    first[1:] = (cols[1:] != cols[:-1]) | (values[1:] != values[:-1])
    starts = np.flatnonzero(first)
    weight = np.diff(np.append(starts, cols.size)).astype(np.float64)
    return cols[starts], values[starts], weight


def theta_ml(y: np.ndarray, mu: np.ndarray, *, steps: int = THETA_STEPS) -> np.ndarray:
    """Negative-binomial ``theta`` of every column given its means ``mu`` (cells x genes).

    Starts from the moment estimate ``n / sum((y / mu - 1)^2)`` and takes at most ``steps``
    Newton steps on the score, each gene stopping once its step is below ``eps^(1/4)``
    (the stopping rule dynamo 1.5.3 uses, so large thetas come out where its do).
    Negative results are 0. The digamma and trigamma differences vanish at zero counts
    and depend on a cell only through its count, so they are evaluated once per distinct
    (gene, count) pair and weighted by how often it occurs.
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    mu = np.ascontiguousarray(mu, dtype=np.float64)
    n = float(y.shape[0])
    tol = EPS**0.25
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = n / ((y / mu - 1.0) ** 2).sum(axis=0)
    gene, count, weight = _count_pairs(y)
    active = np.ones(y.shape[1], dtype=bool)
    for _ in range(steps):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        th = np.abs(theta[idx])
        full = np.zeros(y.shape[1])
        full[idx] = th
        use = active[gene]
        g, v, w, t = gene[use], count[use], weight[use], full[gene[use]]
        with np.errstate(divide="ignore", invalid="ignore"):
            psi = np.bincount(g, w * (special.digamma(t + v) - special.digamma(t)), y.shape[1])
            tri = np.bincount(g, w * (special.zeta(2, t) - special.zeta(2, t + v)), y.shape[1])
            s_log, s_inv, s_inv2, s_y, s_y2 = _theta_sums(y, mu, th, idx)
            score = psi[idx] + n * (np.log(th) + 1.0) - s_log - s_y - th * s_inv
            info = tri[idx] - n / th + 2.0 * s_inv - s_y2 - th * s_inv2
            delta = score / info
        theta[idx] = th + delta
        active[idx] = ~(np.abs(delta) <= tol)
    return np.maximum(theta, 0.0)


def fit_genes(y: np.ndarray, log_umi: np.ndarray) -> np.ndarray:
    """Step-1 fit of every column of ``y`` (dense counts of the sample cells, cells x genes).

    Returns ``(3, genes)``: intercept, slope on ``log10(umi)`` and theta (at least
    :data:`MIN_THETA`).
    """
    y = np.asarray(y, dtype=np.float64)
    lu = np.asarray(log_umi, dtype=np.float64).ravel()
    params = fit_poisson(y, lu)
    mu = np.exp(params[0] + lu[:, None] * params[1])
    theta = theta_ml(y, mu)
    theta = np.where(theta < MIN_THETA, MIN_THETA, theta)
    return np.vstack([params, theta])


def scott_density(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``values`` at ``points``, bandwidth by Scott's rule.

    The kernel's standard deviation is the sample's (ddof 1) times ``n^(-1/5)``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    h = v.std(ddof=1) * v.size ** (-1.0 / 5.0)
    out = np.empty(len(points))
    for start in range(0, len(points), EVAL_CHUNK):
        p = np.asarray(points[start : start + EVAL_CHUNK], dtype=np.float64)
        u = (p[:, None] - v[None, :]) / h
        out[start : start + EVAL_CHUNK] = np.exp(-0.5 * u * u).sum(axis=1)
    return out / (v.size * h * np.sqrt(2 * np.pi))


def draw_genes(
    candidates: np.ndarray, log_gmean: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``size`` genes without replacement, each with weight 1 / density of its mean.

    The density of the candidates' ``log_gmean`` is estimated on a grid of
    :data:`KDE_GRID` points and interpolated, so genes of every expression level are
    represented (rare high-expression genes are not crowded out). Returns them sorted.
    """
    lg = np.asarray(log_gmean, dtype=np.float64)
    grid = np.linspace(lg.min(), lg.max(), KDE_GRID)
    weight = 1.0 / (np.interp(lg, grid, scott_density(lg, grid)) + EPS)
    return np.sort(rng.choice(candidates, size=size, replace=False, p=weight / weight.sum()))


def _isj_gap(t: float, n: int, k2: np.ndarray, a2: np.ndarray) -> float:
    """Botev et al.'s fixed-point equation ``t - xi gamma^[l](t)`` with l = 7 stages."""
    stages = 7
    f = 0.5 * np.pi ** (2 * stages) * np.sum(k2**stages * a2 * np.exp(-k2 * np.pi**2 * t))
    if f <= 0:
        return -1.0
    for s in range(stages - 1, 1, -1):
        odd = np.prod(np.arange(1, 2 * s + 1, 2, dtype=np.float64))
        k0 = odd / np.sqrt(2 * np.pi)
        c = (1 + 0.5 ** (s + 0.5)) / 3
        ts = (2 * c * k0 / (n * f)) ** (2.0 / (3.0 + 2.0 * s))
        f = 0.5 * np.pi ** (2 * s) * np.sum(k2**s * a2 * np.exp(-k2 * np.pi**2 * ts))
    return t - (2 * n * np.sqrt(np.pi) * f) ** (-2.0 / 5.0)


def isj_bandwidth(values: np.ndarray) -> float:
    """Improved Sheather-Jones bandwidth (Botev, Grotowski & Kroese 2010) of 1-D data.

    The data are linearly binned on :data:`ISJ_GRID` equidistant points reaching
    ``max(0.5 range, 6)`` beyond the data on each side, the binned density's DCT-II feeds
    the fixed-point equation, solved by Brent's method on ``[0, tol]`` with ``tol`` doubled
    until there is a root; the bandwidth is ``sqrt(t) * range`` (the conventions of KDEpy,
    which dynamo 1.5.3 calls). Raises :class:`InputError` when no root is found.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = x.min(), x.max()
    span = hi - lo
    if not span > 0:
        raise InputError("the ISJ bandwidth needs at least two distinct values")
    border = max(0.5 * span, 6.0)
    grid = np.linspace(lo - border, hi + border, ISJ_GRID)
    dx = (grid[-1] - grid[0]) / (ISJ_GRID - 1)
    pos = (x - grid[0]) / dx
    left = np.floor(pos).astype(np.int64)
    frac = pos - left
    binned = np.bincount(left, weights=1.0 - frac, minlength=ISJ_GRID + 1)
    binned += np.bincount(left + 1, weights=frac, minlength=ISJ_GRID + 1)
    binned = binned[:ISJ_GRID] / x.size
    a = fft.dct(binned, type=2)
    k2 = np.arange(1, ISJ_GRID, dtype=np.float64) ** 2
    a2 = a[1:] ** 2
    n = len(np.unique(x))
    n_eff = max(min(1050, n), 50)
    tol = 10e-12 + 0.01 * (n_eff - 50) / 1000
    while True:
        try:
            t, res = optimize.brentq(
                _isj_gap, 0, tol, args=(n, k2, a2), full_output=True, disp=False
            )
            if res.converged and t > 0:
                break
        except ValueError:
            pass
        tol *= 2.0
        if tol >= 1:
            raise InputError("the ISJ bandwidth did not converge: too few distinct values")
    return float(np.sqrt(t) * span)


def _robust_z(y: np.ndarray, x: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    """``(y - median) / (1.4826 MAD + eps)`` within each bin of ``x`` cut at ``breaks``."""
    bins = np.digitize(x, breaks)
    out = np.zeros(y.size)
    for b in np.unique(bins):
        member = bins == b
        yb = y[member]
        centre = np.median(yb)
        out[member] = (yb - centre) / (1.4826 * np.median(np.abs(yb - centre)) + EPS)
    return out


def outliers(y: np.ndarray, x: np.ndarray, *, score: float = OUTLIER_SCORE) -> np.ndarray:
    """Genes whose parameter ``y`` is far from the others of similar mean ``x``.

    Robust z-scores within bins of ``x`` of width ``range * h / 2`` (``h`` the ISJ
    bandwidth of ``x``), on two grids offset by half a bin; a gene is an outlier when both
    scores exceed ``score`` in absolute value.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(), x.max()
    width = (hi - lo) * isj_bandwidth(x) / 2
    first = np.arange(lo, hi + width, width)
    second = np.arange(lo - EPS * 10 - width / 2, hi + width, width)
    z = np.minimum(np.abs(_robust_z(y, x, first)), np.abs(_robust_z(y, x, second)))
    return z > score


def local_linear(x: np.ndarray, y: np.ndarray, at: np.ndarray, bandwidth: float) -> np.ndarray:
    """Local linear regression of ``y`` on ``x`` with a Gaussian kernel, evaluated at ``at``.

    At each point the weighted least-squares line through the data (weights
    ``exp(-d^2 / 2 h^2)``) gives the value. Returns one value per point in ``at``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    at = np.asarray(at, dtype=np.float64)
    out = np.empty(at.size)
    for start in range(0, at.size, EVAL_CHUNK):
        p = at[start : start + EVAL_CHUNK]
        d = x[None, :] - p[:, None]
        w = np.exp(-0.5 * (d / bandwidth) ** 2)
        s0, s1, s2 = w.sum(axis=1), (w * d).sum(axis=1), (w * d * d).sum(axis=1)
        t0, t1 = (w * y).sum(axis=1), (w * d * y).sum(axis=1)
        det = s0 * s2 - s1 * s1
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (s2 * t0 - s1 * t1) / det
        flat = ~np.isfinite(value) | (np.abs(det) <= 1e-300)
        value[flat] = (t0 / s0)[flat]  # a single support point: the weighted mean
        out[start : start + EVAL_CHUNK] = value
    return out


def regularize(
    step1: np.ndarray,
    step1_log_gmean: np.ndarray,
    log_gmean: np.ndarray,
    *,
    bw_adjust: float = 3.0,
) -> dict:
    """Smooth the step-1 parameters against the genes' means; parameters for every gene.

    ``step1`` is ``(3, genes1)`` (intercept, slope, theta) from :func:`fit_genes`;
    ``step1_log_gmean`` their genes' log10 geometric means (on the fit cells), ``log_gmean``
    every modelled gene's (on all cells). theta is regularised as the dispersion
    ``log10(1 + 10^gmean / theta)``; genes that are outliers in any of the three are set
    aside; each parameter is fitted by :func:`local_linear` with the ISJ bandwidth of the
    remaining means times ``bw_adjust``, at every gene's mean clipped to their range.

    Returns ``dispersion`` (step-1 genes), ``kept`` (step-1 genes not outliers),
    ``bandwidth`` and ``params`` ``(3, genes)``: intercept, slope, theta for every gene.
    """
    step1 = np.asarray(step1, dtype=np.float64)
    g1 = np.asarray(step1_log_gmean, dtype=np.float64)
    lg = np.asarray(log_gmean, dtype=np.float64)
    dispersion = np.log10(1 + 10**g1 / step1[2])
    pars = np.vstack([step1[0], step1[1], dispersion])
    bad = np.zeros(g1.size, dtype=bool)
    for row in pars:
        bad |= outliers(row, g1)
    kept = ~bad
    if kept.sum() < 2:
        raise InputError("sctransform: fewer than two step-1 genes are not outliers")
    bandwidth = isj_bandwidth(g1[kept]) * bw_adjust
    at = np.clip(lg, g1[kept].min(), g1[kept].max())
    smooth = np.vstack([local_linear(g1[kept], row[kept], at, bandwidth) for row in pars])
    theta = 10**lg / (10 ** smooth[2] - 1)
    return {
        "dispersion": dispersion,
        "kept": kept,
        "bandwidth": bandwidth,
        "params": np.vstack([smooth[0], smooth[1], theta]),
    }


def residual_values(
    csr: sparse.csr_matrix, params: np.ndarray, clip: float
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """The residuals of the non-zero entries of ``csr`` (cells x modelled genes).

    ``umi`` is each row's total over the modelled genes (those with finite parameters;
    the others get residual 0); ``mu = exp(b0 + b1 log10 umi)``; the residual
    ``(x - mu) / sqrt(mu + mu^2 / theta)`` is kept where positive and cut at ``clip``
    (dynamo 1.5.3's rule: zero counts and negative residuals are 0, so X stays sparse).
    Returns the residual CSR and the rows' umi.
    """
    model = np.isfinite(params).all(axis=0)
    umi = np.asarray(csr[:, np.flatnonzero(model)].sum(axis=1)).ravel()
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    cols = csr.indices
    with np.errstate(divide="ignore"):
        lu = np.log10(umi)[rows]
    with np.errstate(invalid="ignore"):
        mu = np.exp(params[0][cols] + params[1][cols] * lu)
        r = (csr.data - mu) / np.sqrt(mu + mu * mu / params[2][cols])
        r = np.minimum(np.where(r > 0, r, 0.0), clip)
    out = sparse.csr_matrix((r, cols.copy(), csr.indptr.copy()), shape=csr.shape)
    out.eliminate_zeros()
    return out, umi


def residuals(
    block, *, genes: np.ndarray, params: np.ndarray, clip: float, dtype=np.float32
) -> sparse.csr_matrix:
    """A CSR copy of ``block`` whose columns ``genes`` hold their sctransform residuals.

    The other columns keep their values. ``params`` is ``(3, len(genes))``; a gene with
    NaN parameters (not modelled) gets 0.
    """
    full = sparse.csr_matrix(block)
    genes = np.asarray(genes)
    res, _ = residual_values(_csr(full, genes), np.asarray(params, dtype=np.float64), clip)
    others = np.setdiff1d(np.arange(full.shape[1]), genes)
    merged = sparse.hstack([full[:, others].astype(dtype), res.astype(dtype)], format="csr")
    order = np.argsort(np.concatenate([others, genes]))
    out = merged[:, order].tocsr()
    out.sort_indices()
    return out


def residual_moments(block, *, genes: np.ndarray, params: np.ndarray, clip: float) -> dict:
    """Per modelled gene: sum and sum of squares of its residuals over the block's cells."""
    res, _ = residual_values(_csr(block, genes), np.asarray(params, dtype=np.float64), clip)
    sq = res.multiply(res)
    return {
        "sum": np.asarray(res.sum(axis=0)).ravel(),
        "sumsq": np.asarray(sq.sum(axis=0)).ravel(),
    }
