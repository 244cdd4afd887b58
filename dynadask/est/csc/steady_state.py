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

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._core.compute import compute
from ..._core.errors import InputError
from ..._core.validate import same_shape
from ...graph import kinetics as gk
from ...graph.blocks import take_columns
from ...kernels import estimation as ke
from ...kernels import kinetics as kk
from ..quantiles import N_BINS, score_windows, thresholds, too_crowded

log = logging.getLogger(__name__)

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
        st = self._sums(layers, codes, n_strata, ke.STEADY_TERMS | extra)
        out = finish(st, self)
        out["gamma_r2"], out["gamma_logLL"] = ke.goodness(st, out["gamma"], out["gamma_b"])
        out["beta"] = np.ones_like(out["gamma"])
        self.params = out
        return self

    def _tails(self) -> tuple[float | None, float | None]:
        right = self.perc_right
        left = self.perc_left if self.perc_left is not None or not self.intercept else right
        return right, left

    def _sums(
        self, layers: dict[str, Any], codes: np.ndarray, n_strata: int, terms: dict
    ) -> dict[str, np.ndarray]:
        """The sums of ``terms``, ``'x:'`` ones over each gene's extreme cells.

        Three passes over the rows: the score range, its histogram, then the sums with the
        cells inside the threshold bins kept aside (:func:`gk.window_sums`) until their
        values give the exact thresholds. Genes whose threshold bins hold too many cells to
        keep (:func:`too_crowded`, known from the histogram) take two more passes over
        their columns only (:meth:`_sums_exactly`).
        """
        right, left = self._tails()
        if right is None:
            (st,) = compute(
                gk.product_sums(layers, codes, n_strata, terms, derived=ke.DERIVED),
                desc="dynamics: sums",
            )
            return st
        s, u = layers["s"], layers["u"]
        qs = [100 - right] + ([left] if left is not None else [])
        plan = score_windows(s, u, codes, n_strata, qs, self.n_bins)
        grid = plan["grid"]
        window = {
            "s": "s",
            "u": "u",
            "scale": grid["scale"],
            "lo": grid["lo"],
            "width": grid["width"],
            "n_bins": self.n_bins,
            "right": plan["windows"][0],
            "left": plan["windows"][1] if left is not None else None,
            "skip": too_crowded(plan["in_window"]),
        }
        log.debug(
            "dynamics: %d window cells in all, %d in the most crowded key, %d keys sent on",
            plan["in_window"].sum(), plan["in_window"].max(initial=0), window["skip"].sum(),
        )  # fmt: skip
        (got,) = compute(
            gk.window_sums(layers, codes, n_strata, terms, window=window, derived=ke.DERIVED),
            desc="dynamics: sums",
        )
        pending = got["pending"]
        found = [kk.pending_in_window(pending, window, *w) for w in plan["windows"]]
        values = thresholds(plan, found)
        x_names = sorted(k for k in terms if k.startswith("x:"))
        st = kk.add_pending(
            got["sums"], pending, x_names, values[0], values[1] if left is not None else None
        )
        g = s.shape[1]
        genes = np.unique(np.flatnonzero(got["dropped"]) % g)
        if genes.size:
            log.debug("dynamics: %d of %d genes' thresholds by two more passes", genes.size, g)
            sub = self._sums_exactly(layers, codes, n_strata, terms, plan, genes)
            for k in st:
                st[k][:, genes] = sub[k]
        return st

    def _sums_exactly(
        self,
        layers: dict[str, Any],
        codes: np.ndarray,
        n_strata: int,
        terms: dict,
        plan: dict[str, Any],
        genes: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """The sums of some genes: their window values, then their sums over extreme cells."""
        cols = {k: take_columns(v, genes) for k, v in layers.items()}
        grid = plan["grid"]
        sub_grid = {
            "scale": {k: v[:, genes] for k, v in grid["scale"].items()},
            "lo": grid["lo"][:, genes],
            "width": grid["width"][:, genes],
        }
        sub_plan = {
            "n": plan["n"][:, genes],
            "windows": [(a[:, genes], b[:, genes]) for a, b in plan["windows"]],
            "plans": [tuple(x[:, genes] for x in p) for p in plan["plans"]],
        }
        (found,) = compute(
            gk.collect_in_bins(
                cols["s"], cols["u"], codes, sub_grid, self.n_bins, sub_plan["windows"]
            ),
            desc="dynamics: quantiles",
        )
        values = thresholds(sub_plan, found)
        extreme = {
            "s": "s",
            "u": "u",
            "scale": sub_grid["scale"],
            "right": values[0],
            "left": values[1] if len(values) > 1 else None,
        }
        (st,) = compute(
            gk.product_sums(cols, codes, n_strata, terms, extreme=extreme, derived=ke.DERIVED),
            desc="dynamics: sums",
        )
        return st

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
