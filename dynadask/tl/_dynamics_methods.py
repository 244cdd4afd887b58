"""The estimation registry of ``dyn.tl.dynamics``: (experiment type, model, est_method) -> run.

A runner takes the resolved inputs and returns per-group, per-gene parameters and lazy
velocity layers (full gene width; genes outside the estimation get 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core import keys
from .._core.errors import InputError
from ..est.csc.dynamical import Dynamical
from ..est.csc.dynamical_em import DynamicalEM
from ..est.csc.steady_state import SteadyState, splicing_velocity
from ..est.tsc.labelling import Labelling
from ..graph.blocks import take_columns
from ..kernels import dynamical_em as ke


@dataclass
class Job:
    """Everything a runner needs."""

    layers: dict[str, Any]
    second: dict[str, Any]
    valid: np.ndarray
    codes: np.ndarray
    n_groups: int
    t: np.ndarray | None
    model: str
    est_method: str
    options: dict[str, Any] = field(default_factory=dict)

    def columns(self, x: Any) -> Any:
        """The valid genes' columns of a cells x genes array (lazy for Dask)."""
        idx = np.flatnonzero(self.valid)
        if idx.size == self.valid.size:
            return x
        return take_columns(x, idx)


Runner = Callable[[Job], tuple[dict[str, np.ndarray], dict[str, Any]]]


def _widen(params: dict[str, np.ndarray], valid: np.ndarray, fill: float) -> dict:
    out = {}
    for k, v in params.items():
        full = np.full(v.shape[:-1] + (valid.size,), fill, dtype=np.float64)
        full[..., valid] = v
        out[k] = full
    return out


def run_steady_state(job: Job) -> tuple[dict, dict]:
    """Conventional data: steady-state fit of ``u`` on ``s``; ``velocity_S = beta u - gamma s``."""
    opts = {k: job.options[k] for k in ("perc_left", "perc_right", "intercept") if k in job.options}
    est = SteadyState(job.model, job.est_method, **opts)
    cols = {k: job.columns(v) for k, v in (job.layers | job.second).items()}
    est.fit(
        cols["u"], cols["s"], cols.get("us"), cols.get("ss"), codes=job.codes, n_strata=job.n_groups
    )
    params = est.params
    return params, {keys.VELOCITY_S: _splicing_velocity(job, params)}


def run_dynamical_em(job: Job) -> tuple[dict, dict]:
    """Conventional data: EM over latent cell times and the splicing ODE's rates (``beta = 1``)."""
    est = DynamicalEM().fit(
        job.columns(job.layers["u"]),
        job.columns(job.layers["s"]),
        codes=job.codes,
        n_strata=job.n_groups,
    )
    return est.params, {keys.VELOCITY_S: _splicing_velocity(job, est.params)}


AUTO_MARGIN = 0.05  # held-out log-likelihood per cell the curve must gain over the line
# model='auto' takes the EM's gamma of a gene where the EM's gamma is pinned by the data: on
# its own curve where the cells are seen on the decay branch (5 % of the fit cells at least
# kernels.dynamical_em.MIN_REACH past the switch-off, fit_reach), the curve determines gamma
# (fit_gamma_free == 0) and gains AUTO_MARGIN over the line on held-out cells; or where the
# gene keeps the refit at the cells' shared time (fit_shared == 1: no decay branch seen, the
# refit at least as likely on the held-out cells as its own curve, both at the shared time).
# The own curve without a decay branch is never taken: on noisy inductions the EM places a
# switch-off among the last cells with gamma too high (taking it lost up to 0.17 in cosine
# to the default at depth 0.2), and its latest cells are no measure of decay (early cells
# project 2-12 past such a switch-off; the 95th percentile stays below 1.4 there). Thresholds
# of 1.25 and 1.5 took the same genes; 2 lost 0.025 in rho on cycles at depth 0.2, 3 lost
# 0.054. Before the refit was taken (decay branch only), auto matched the default on
# inductions (cosine 0.52-0.98 at 5,000 x 300); with it, 0.96-0.99, and within 0.013 of the
# default's rho on all 26 sets measured at that size (1,500 x 60: 60 sets, at most -0.025;
# benchmarks/README).
AUTO_MIN_REACH = ke.MIN_REACH


def run_auto(job: Job) -> tuple[dict, dict]:
    """Conventional data: per gene, the dynamical EM where the data pin its gamma.

    The default steady-state fit (``stochastic/gmm``) runs on all cells; the EM (with its
    shared-time refit) runs on a seeded sample with a seeded held-out share. A gene takes
    the EM's parameters when its curve is not flat (``fit_steady == 0``) and either it keeps
    the refit at the cells' shared time (``fit_shared == 1``), or its cells determine the
    own curve's ``gamma`` (``fit_gamma_free == 0``), run on past the switch-off (5 % of the
    fit cells at least ``AUTO_MIN_REACH`` after ``t_switch``: ``fit_reach``) and the curve
    gives the held-out cells a mean log-likelihood at least ``AUTO_MARGIN`` above the
    steady-state line ``u = gamma s`` (both with their noise fitted on the fit cells); else
    the steady-state parameters (gamma, velocity and all, exactly those of
    ``stochastic/gmm``), as for a gene the held-out cells cannot score.
    """
    ss_job = Job(**{**job.__dict__, "model": "stochastic", "est_method": "gmm"})
    ss, _ = run_steady_state(ss_job)
    em = (
        DynamicalEM(holdout=1000)
        .fit(
            job.columns(job.layers["u"]),
            job.columns(job.layers["s"]),
            codes=job.codes,
            n_strata=job.n_groups,
            reference_gamma=ss["gamma"],
        )
        .params
    )
    gain = em["fit_heldout_loglik"] - em["fit_heldout_loglik_ref"]
    decay = (gain >= AUTO_MARGIN) & (em["fit_gamma_free"] == 0)
    decay &= em["fit_reach"] >= AUTO_MIN_REACH
    pick = (decay | (em["fit_shared"] == 1)) & (em["fit_steady"] == 0)
    # a gene the held-out cells cannot score keeps gmm's (NaN gain: 31 genes on pancreas, the
    # 8 looked at with spliced counts in 1-3 cells, the EM's curves through a few points)
    pick &= np.isfinite(em["gamma"]) & np.isfinite(gain)
    params = {k: v for k, v in em.items() if k.startswith("fit_")}
    for k in set(ss) | {"alpha", "t_switch"}:
        a = np.asarray(em.get(k, np.full(pick.shape, np.nan)), np.float64)
        b = np.asarray(ss.get(k, np.full(pick.shape, np.nan)), np.float64)
        params[k] = np.where(pick, a, b)
    params["fit_loglik_gain"] = gain
    params["fit_t_switch"] = np.asarray(em["t_switch"], np.float64)  # the EM's, every gene
    params["fit_dynamical"] = np.where(np.isfinite(gain), pick.astype(np.float64), np.nan)
    return params, {keys.VELOCITY_S: _splicing_velocity(job, params)}


def run_dynamical_curve(job: Job) -> tuple[dict, dict]:
    """Conventional data: the trajectory curve nearest to the cells (the first dynamical fit)."""
    est = Dynamical().fit(
        job.columns(job.layers["u"]),
        job.columns(job.layers["s"]),
        codes=job.codes,
        n_strata=job.n_groups,
    )
    return est.params, {keys.VELOCITY_S: _splicing_velocity(job, est.params)}


def _splicing_velocity(job: Job, params: dict[str, np.ndarray]) -> Any:
    """``beta u - gamma s`` over all genes (0 outside the estimated ones)."""
    wide = _widen({"beta": params["beta"], "gamma": params["gamma"]}, job.valid, 0.0)
    return splicing_velocity(wide, job.layers["u"], job.layers["s"], job.codes, job.n_groups)


def run_labelling(experiment_type: str) -> Runner:
    """A runner for one labelling experiment type."""

    def run(job: Job) -> tuple[dict, dict]:
        opts = (
            {"perc_right": job.options["perc_right"]} if job.options.get("perc_right_given") else {}
        )
        est = Labelling(experiment_type, job.est_method, **opts)
        cols = {k: job.columns(v) for k, v in job.layers.items()}
        sec = {k: job.columns(v) for k, v in job.second.items()}
        est.fit(cols, job.t, second=sec, group_codes=job.codes, n_groups=job.n_groups)
        params = est.params
        wide = Labelling(
            experiment_type,
            job.est_method,
            splicing=est.splicing,
            params=_widen(params, job.valid, 0.0),
        )
        return params, wide.velocities(job.layers, job.t, job.codes, job.n_groups)

    return run


REGISTRY: dict[tuple[str, str, str], Runner] = {
    ("conventional", "stochastic", "gmm"): run_steady_state,
    ("conventional", "stochastic", "negbin"): run_steady_state,
    ("conventional", "deterministic", "ols"): run_steady_state,
    ("conventional", "dynamical", "em"): run_dynamical_em,
    ("conventional", "dynamical", "curve"): run_dynamical_curve,
    ("one-shot", "deterministic", "ols"): run_labelling("one-shot"),
    ("one-shot", "stochastic", "gmm"): run_labelling("one-shot"),
    ("kin", "deterministic", "direct"): run_labelling("kin"),
    ("kin", "deterministic", "twostep"): run_labelling("kin"),
    ("deg", "deterministic", "direct"): run_labelling("deg"),
    ("mix_std_stm", "deterministic", "direct"): run_labelling("mix_std_stm"),
}
# model 'auto' and est_method 'auto' per experiment type
AUTO_MODEL = {
    "conventional": "stochastic",
    "one-shot": "deterministic",
    "kin": "deterministic",
    "deg": "deterministic",
    "mix_std_stm": "deterministic",
}
AUTO_METHOD = {
    ("conventional", "stochastic"): "gmm",
    ("conventional", "deterministic"): "ols",
    ("conventional", "dynamical"): "em",
    ("one-shot", "deterministic"): "ols",
    ("one-shot", "stochastic"): "gmm",
    ("kin", "deterministic"): "direct",
    ("deg", "deterministic"): "direct",
    ("mix_std_stm", "deterministic"): "direct",
}


def resolve(experiment_type: str, model: str | None, est_method: str) -> tuple[str, str, Runner]:
    """Pick the runner.

    ``model=None`` (nothing named) resolves per experiment type as dynamo's ``'auto'``;
    ``'auto'`` is the per-gene choice for splicing data (:func:`run_auto`) and dynamo's
    resolution for labelling data.
    """
    if model == "auto" and experiment_type == "conventional" and est_method == "auto":
        return model, est_method, run_auto
    model = AUTO_MODEL[experiment_type] if model in (None, "auto") else model
    model = {"moment": "stochastic"}.get(model, model)
    if est_method == "auto":
        est_method = AUTO_METHOD.get((experiment_type, model), "auto")
    runner = REGISTRY.get((experiment_type, model, est_method))
    if runner is None:
        known = [f"{m}/{e}" for (x, m, e) in REGISTRY if x == experiment_type]
        raise InputError(
            f"no estimator for experiment_type={experiment_type!r}, "
            f"model={model!r}, est_method={est_method!r}: for this experiment use "
            f"model/est_method one of {known}"
        )
    return model, est_method, runner


def needs_second_moments(model: str, est_method: str) -> bool:
    """Whether the estimator reads second moments (M_us/M_ss or M_tn/M_tt)."""
    return est_method in ("gmm", "negbin") or (model, est_method) == ("auto", "auto")
