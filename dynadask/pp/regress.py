"""dynamo's ``regress_out``: remove a linear effect of obs columns from every gene, lazily."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import residuals as gres


def covariates(adata: ad.AnnData, obs_keys: list[str]) -> np.ndarray:
    """The obs columns as a float64 ``(cells, keys)`` matrix (numeric, finite)."""
    missing = [k for k in obs_keys if k not in adata.obs]
    if missing:
        raise MissingKeyError(f"regress_out: obs columns {missing} not found")
    try:
        a = adata.obs[list(obs_keys)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"regress_out needs numeric obs columns: {obs_keys} ({err})") from err
    if not np.isfinite(a).all():
        raise InputError(f"regress_out: obs columns {obs_keys} hold NaN or infinite values")
    return a


def regressed(
    x: Any, a: np.ndarray, *, genes: np.ndarray | None = None, cells: np.ndarray | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Least-squares residuals of columns of ``x`` on ``a`` with an intercept, lazily.

    The columns ``genes`` (all when ``None``) are regressed. One pass over row blocks sums
    each gene and its products with the centred covariates (over ``cells``, all when
    ``None``); the coefficients solve the normal equations; the residuals
    ``x - intercept - a @ coef`` are lazy dense row blocks (float32).

    Returns the residual matrix, the intercepts and the coefficients (keys x genes).
    """
    kept = np.ones(a.shape[0], bool) if cells is None else np.asarray(cells, dtype=bool)
    centre = a[kept].mean(axis=0)
    ac = a - centre
    lazy = gres.regression_sums(x, ac, genes=genes, cells=cells)
    (sums,) = compute(lazy, desc="regress_out sums")
    gram = ac[kept].T @ ac[kept]
    coef = np.linalg.lstsq(gram, sums["cross"], rcond=None)[0]
    intercept = sums["sum"] / kept.sum() - centre @ coef
    return gres.regression_residuals(x, a, intercept, coef, genes=genes), intercept, coef
