"""Feature-gene scores from per-gene moments: monocle-style dispersion versus mean.

Works on per-gene arrays (already reduced over cells), not on blocks of cells.
"""

from __future__ import annotations

import numpy as np


def mean_cv(total: np.ndarray, total_sq: np.ndarray, n: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene ``log2`` mean and ``log2`` coefficient of variation (population s.d.).

    Genes with zero mean get 0 for both.
    """
    mu = np.asarray(total, dtype=np.float64) / n
    var = np.clip(np.asarray(total_sq, dtype=np.float64) / n - mu**2, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_m = np.log2(mu)
        log_cv = np.log2(np.sqrt(var) / mu)
    zero = mu == 0
    log_m[zero], log_cv[zero] = 0.0, 0.0
    return log_m, log_cv


def mean_fano(
    total: np.ndarray, total_sq: np.ndarray, n: float, ddof: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and Fano factor (variance / mean; NaN for genes with zero mean)."""
    mu = np.asarray(total, dtype=np.float64) / n
    var = gene_variance(total, total_sq, n, ddof)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mu, var / mu


def gene_variance(total: np.ndarray, total_sq: np.ndarray, n: float, ddof: int = 0) -> np.ndarray:
    """Per-gene variance from sums (``ddof=1``: the sample variance), clipped at 0."""
    mu = np.asarray(total, dtype=np.float64) / n
    var = np.clip(np.asarray(total_sq, dtype=np.float64) / n - mu**2, 0, None)
    return var * n / (n - ddof) if n > ddof else var


def mean_cv_ddof(
    total: np.ndarray, total_sq: np.ndarray, n: float, ddof: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mean_cv` with the standard deviation of ``ddof`` (1: the sample s.d.)."""
    mu = np.asarray(total, dtype=np.float64) / n
    sd = np.sqrt(gene_variance(total, total_sq, n, ddof))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_m, log_cv = np.log2(mu), np.log2(sd / mu)
    zero = mu == 0
    log_m[zero], log_cv[zero] = 0.0, 0.0
    return log_m, log_cv


def svr_scores(
    log_m: np.ndarray, log_cv: np.ndarray, svr_gamma: float | None = None
) -> tuple[np.ndarray, float]:
    """Residual of ``log_cv`` over an RBF support-vector regression on ``log_m``.

    ``svr_gamma`` defaults to ``150 / n_genes``. Returns the scores and the gamma used.
    """
    from sklearn.svm import SVR  # heavy (about 3 s): only when genes are selected

    gamma = 150.0 / len(log_m) if svr_gamma is None else svr_gamma
    fit = SVR(gamma=gamma).fit(np.asarray(log_m)[:, None], log_cv)
    return np.asarray(log_cv) - fit.predict(np.asarray(log_m)[:, None]), gamma


def top_scores(score: np.ndarray, n_top: int) -> np.ndarray:
    """Mask of the ``n_top`` highest finite scores (ties at the cut: first in gene order)."""
    score = np.asarray(score, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(score))
    mask = np.zeros(score.size, dtype=bool)
    if valid.size == 0 or n_top <= 0:
        return mask
    nth = np.sort(score[valid])[::-1][min(n_top, valid.size) - 1]
    mask[valid[score[valid] >= nth][:n_top]] = True
    return mask


def svr_curve(
    log_m: np.ndarray, log_cv: np.ndarray, svr_gamma: float, at: np.ndarray
) -> np.ndarray:
    """The RBF support-vector regression of ``log_cv`` on ``log_m`` evaluated at ``at``.

    The same fit as :func:`svr_scores` (default SVR settings, ``gamma=svr_gamma``): the
    trend line the monocle gene selection ranks genes against.
    """
    from sklearn.svm import SVR

    fit = SVR(gamma=svr_gamma).fit(np.asarray(log_m)[:, None], np.asarray(log_cv))
    return fit.predict(np.asarray(at, dtype=np.float64)[:, None])


def seurat_dispersion_norm(
    mean: np.ndarray, variance: np.ndarray, n_bins: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seurat's binned, z-scored log dispersion of each gene (dynamo's ``seurat_dispersion``).

    Genes are put into ``n_bins`` equal-width bins of ``log1p(mean)`` (the lowest edge moved
    down by 0.1 % of the range, intervals closed on the right); each gene's
    ``log(variance / mean)`` (NaN where the dispersion is 0) is centred on its bin's mean
    and divided by the bin's sample s.d. A bin with one gene uses its mean as the s.d. and 0
    as the mean; NaN results become 0.

    Returns
    -------
    tuple of numpy.ndarray
        The normalised dispersion, the bin mean and the bin variance of each gene.
    """
    mean = np.asarray(mean, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = np.asarray(variance, dtype=np.float64) / mean
        dispersion[dispersion == 0] = np.nan
        dispersion = np.log(dispersion)
    log_mean = np.log1p(mean)
    low, high = np.nanmin(log_mean), np.nanmax(log_mean)
    edges = np.linspace(low, high, n_bins + 1)
    edges[0] -= (high - low) * 0.001 if high > low else 0.001 * abs(low) or 0.001
    which = np.clip(np.searchsorted(edges, log_mean, side="left") - 1, 0, n_bins - 1)
    bin_mean = np.full(n_bins, np.nan)
    bin_std = np.full(n_bins, np.nan)
    for b in range(n_bins):
        values = dispersion[(which == b) & np.isfinite(dispersion)]
        if values.size:
            bin_mean[b] = values.mean()
        if values.size > 1:
            bin_std[b] = values.std(ddof=1)
    single = np.isnan(bin_std)
    bin_std[single] = bin_mean[single]
    bin_mean[single] = 0
    m, s = bin_mean[which], bin_std[which]
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = (dispersion - m) / s
    norm[np.isnan(norm)] = 0.0
    return norm, m, s**2


def top_with_ties(values: np.ndarray, n_top: int) -> np.ndarray:
    """Mask of the values at least as large as the ``n_top``-th largest (ties all kept)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.zeros(0, dtype=bool)
    threshold = np.sort(values)[::-1][min(n_top, values.size) - 1]
    return values >= threshold
