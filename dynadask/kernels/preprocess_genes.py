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
