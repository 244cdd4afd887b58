"""Steady-state estimation of ``gamma / beta`` for splicing data, on plain arrays.

``u ~ gamma s`` near steady state: the slope is fitted on the cells whose
``s / max s + u / max u`` lies in the top ``perc_right`` percent (and the bottom
``perc_left`` percent when given) of each gene, then judged over all cells. Three fits:

- ``('deterministic', 'ols')``: least squares (through the origin unless ``intercept``);
- ``('stochastic', 'gmm')``: generalised method of moments with the second moments
  ``us`` and ``ss`` (``u + 2 us ~ gamma (2 ss - s)`` beside ``u ~ gamma s``);
- ``('stochastic', 'negbin')``: negative-binomial moment equations.

All of it is a map-reduce over row blocks: exact quantile thresholds
(:mod:`dynadask.est.quantiles`), then one pass of per-gene sums, then a per-gene finish.
Cells may be split in strata (cell groups): every stratum gets its own parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._core.compute import compute
from ..._core.errors import InputError
from ..._core.validate import same_shape
from ...graph import kinetics as gk
from ...kernels import estimation as ke
from ..quantiles import N_BINS, extreme_thresholds

Finisher = Callable[[dict, "SteadyState"], dict]


def _finish_ols(st: dict, est: SteadyState) -> dict:
    k, b = ke.ols_slope(st, est.intercept)
    return {"gamma": k, "gamma_b": b}


def _finish_gmm(st: dict, est: SteadyState) -> dict:
    return {"gamma": ke.gmm_slope(st), "gamma_b": np.zeros_like(st["n"])}


def _finish_negbin(st: dict, est: SteadyState) -> dict:
    k, phi = ke.negbin_slope(st)
    mean_total = (st["x:u"] + st["x:s"]) / np.where(st["x:n"] > 0, st["x:n"], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"gamma": k, "gamma_b": np.zeros_like(k), "bs": mean_total * phi, "bf": k / phi}


# (model, est_method) -> (extra sums needed, finisher, second moments needed)
METHODS: dict[tuple[str, str], tuple[dict, Finisher, bool]] = {
    ("deterministic", "ols"): ({}, _finish_ols, False),
    ("stochastic", "gmm"): (ke.GMM_TERMS, _finish_gmm, True),
    ("stochastic", "negbin"): (ke.NEGBIN_TERMS, _finish_negbin, True),
}


@dataclass
class SteadyState:
    """Steady-state (extreme-cell) fit of the slope of ``u`` on ``s`` for every gene.

    Parameters
    ----------
    model, est_method
        ``('deterministic', 'ols')``, ``('stochastic', 'gmm')`` (dynamo's default) or
        ``('stochastic', 'negbin')``.
    perc_left, perc_right
        Percent of cells in the lower / upper tail of the extremeness score used for the
        fit (``perc_right=None``: all cells; ``perc_left=None``: no lower tail, except with
        ``intercept`` where it defaults to ``perc_right``, as dynamo).
    intercept
        Fit an intercept (``ols`` only).
    n_bins
        Histogram bins of the exact quantile passes.

    Attributes
    ----------
    params : dict
        After :meth:`fit`: ``gamma, gamma_b, gamma_r2, gamma_logLL, beta`` (and ``bs, bf``
        for ``negbin``), each ``n_strata x n_genes``.

    Examples
    --------
    >>> est = SteadyState().fit(M_u, M_s, M_us, M_ss)  # doctest: +SKIP
    >>> est.params["gamma"][0]  # doctest: +SKIP
    """

    model: str = "stochastic"
    est_method: str = "gmm"
    perc_left: float | None = None
    perc_right: float | None = 5
    intercept: bool = False
    n_bins: int = N_BINS
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.model, self.est_method) not in METHODS:
            known = ", ".join(f"{m}/{e}" for m, e in METHODS)
            raise InputError(
                f"unknown steady-state fit model={self.model!r}, "
                f"est_method={self.est_method!r}: use one of {known}"
            )
        if self.est_method != "ols" and self.intercept:
            raise InputError("intercept=True is only available with est_method='ols'")

    def fit(
        self,
        u: Any,
        s: Any,
        us: Any = None,
        ss: Any = None,
        *,
        codes: np.ndarray | None = None,
        n_strata: int | None = None,
    ) -> SteadyState:
        """Estimate the slope of every gene (in every stratum).

        Parameters
        ----------
        u, s
            Cells x genes first moments (or expression) of unspliced and spliced RNA.
        us, ss
            Second moments ``<u s>`` and ``<s s>`` (needed by ``gmm`` and ``negbin``).
        codes
            Stratum of each cell (-1 leaves a cell out); one stratum of all cells if None.
        n_strata
            Number of strata (default ``codes.max() + 1``).

        Returns
        -------
        SteadyState
            ``self``, with :attr:`params` set.
        """
        extra, finish, second = METHODS[(self.model, self.est_method)]
        same_shape(u=u, s=s, us=us, ss=ss)
        if second and (us is None or ss is None):
            raise InputError(
                f"est_method={self.est_method!r} needs the second moments us and "
                "ss (layers M_us, M_ss: run dyn.tl.moments)"
            )
        codes, n_strata = _strata(codes, n_strata, u.shape[0])
        layers = {"s": s, "u": u} | ({"us": us, "v": ss} if second else {})
        extreme = self._extreme(s, u, codes, n_strata)
        terms = ke.STEADY_TERMS | extra
        (st,) = compute(
            gk.product_sums(layers, codes, n_strata, terms, extreme=extreme, derived=ke.DERIVED),
            desc="dynamics: sums",
        )
        out = finish(st, self)
        out["gamma_r2"], out["gamma_logLL"] = ke.goodness(st, out["gamma"], out["gamma_b"])
        out["beta"] = np.ones_like(out["gamma"])
        self.params = out
        return self

    def _extreme(self, s: Any, u: Any, codes: np.ndarray, n_strata: int) -> dict | None:
        right = self.perc_right
        left = self.perc_left if self.perc_left is not None or not self.intercept else right
        if right is None:
            return None
        qs = [100 - right] + ([left] if left is not None else [])
        q = extreme_thresholds(s, u, codes, n_strata, qs, self.n_bins)
        return {
            "s": "s",
            "u": "u",
            "scale": q["grid"]["scale"],
            "right": q["values"][0],
            "left": q["values"][1] if left is not None else None,
        }

    def velocity(
        self, u: Any, s: Any, codes: np.ndarray | None = None, n_strata: int | None = None
    ) -> Any:
        """Lazy ``beta u - gamma s`` per cell with its stratum's parameters (float32)."""
        return splicing_velocity(self.params, u, s, codes, n_strata)


def splicing_velocity(
    params: dict[str, np.ndarray],
    u: Any,
    s: Any,
    codes: np.ndarray | None = None,
    n_strata: int | None = None,
) -> Any:
    """Lazy ``beta u - gamma s`` per cell with its stratum's ``beta``/``gamma`` (float32)."""
    codes, _ = _strata(codes, n_strata, u.shape[0])
    coefs = np.stack([params["beta"], -params["gamma"]])
    return gk.linear_combination([u, s], codes, coefs)


def _strata(codes: np.ndarray | None, n_strata: int | None, n: int) -> tuple[np.ndarray, int]:
    if codes is None:
        return np.zeros(n, dtype=np.int64), 1
    codes = np.asarray(codes, dtype=np.int64).ravel()
    if codes.size != n:
        raise InputError(f"codes has {codes.size} entries but the data has {n} cells")
    return codes, int(n_strata if n_strata is not None else codes.max() + 1)
