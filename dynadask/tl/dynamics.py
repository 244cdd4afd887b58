"""``dyn.tl.dynamics``: kinetic parameters and RNA velocity, as a map-reduce over row blocks."""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import numpy as np

from .._core.adata_config import DynamoAdataConfig
from .._core.errors import InputError, OptionError
from .._core.validate import unique_names, varied_time
from ..io import commit, store_path
from . import _dynamics_methods as dm
from . import _dynamics_setup as ds
from .moments import moments

VEL_PARAMS = (
    "alpha",
    "beta",
    "gamma",
    "half_life",
    "alpha_b",
    "alpha_r2",
    "gamma_b",
    "gamma_r2",
    "gamma_logLL",
    "delta_b",
    "delta_r2",
    "bs",
    "bf",
    "uu0",
    "ul0",
    "su0",
    "sl0",
    "U0",
    "S0",
    "total0",
)
_IGNORED = {
    "assumption_protein": "ss",
    "NTR_vel": False,
    "protein_names": None,
    "concat_data": False,
    "one_shot_method": "combined",
    "fraction_for_deg": False,
    "sanity_check": False,
    "assumption_mRNA": "auto",
    "log_unnormalized": True,
}


def dynamics(
    adata: ad.AnnData,
    *,
    filter_gene_mode: str = "final",
    use_smoothed: bool = True,
    model: str | None = None,
    est_method: str = "auto",
    group: str | None = None,
    re_smooth: bool = False,
    cores: int = 1,
    tkey: str | None = None,
    experiment_type: str | None = None,
    perc_left: float | None = None,
    perc_right: float | None = None,
    intercept: bool = False,
    del_2nd_moments: bool | None = None,
    copy: bool = False,
    **legacy: Any,
) -> ad.AnnData:
    """Estimate per-gene kinetic parameters and RNA velocity.

    The experiment type comes from ``experiment_type``, ``uns['pp']['experiment_type']`` or
    the layers present (splicing only: ``conventional``; labelling layers and a time column:
    ``one-shot`` for one labelling time, ``kin`` or ``deg`` from the trend of the labelled
    fraction). Parameters are sums over row blocks finished per gene:

    - conventional (dynamo's default ``model='stochastic', est_method='gmm'``): slope of
      ``M_u`` on ``M_s`` over the cells in the top ``perc_right`` percent (default 5) of
      ``s / max s + u / max u`` per gene, found by exact out-of-core quantiles; ``gmm``
      adds the second-moment equation ``M_u + 2 M_us ~ gamma (2 M_ss - M_s)``;
      ``'deterministic'/'ols'`` is least squares, ``'stochastic'/'negbin'`` negative
      binomial moments. ``velocity_S = beta M_u - gamma M_s`` (``beta = 1``).
      ``model='dynamical'`` (``est_method='em'``) fits the whole trajectory of the splicing
      ODE (induction then repression) per gene on a sample of cells instead of the extreme
      cells only: an EM over latent cell times, ``alpha``, ``gamma`` and the switching time
      under Gaussian noise, from several starts (:class:`dynadask.est.csc.DynamicalEM`;
      writes ``alpha``, ``t_switch``, ``fit_likelihood``, ``fit_steady`` … too; genes at
      steady state get the ratio of means; genes whose cells are not seen on a decay branch
      (``fit_reach``) and either never reach where degradation counts or have a curve
      ``gamma`` above the extreme-cell slope (which bounds it on an induction) get that
      slope, ``fit_gamma_free``; then, with at least 10 trajectory genes, the sample cells
      get one time shared by the genes, every trajectory gene is refitted at it (time and
      refits alternate for 32 rounds, each weighted by the noise the previous one left, the
      most likely round kept), and the
      genes not seen on a decay branch take that refit, ``fit_shared``, its ``gamma``
      again at most the extreme-cell slope).
      ``est_method='curve'`` is the
      first dynamical fit (nearest curve in the data's spread,
      :class:`dynadask.est.csc.Dynamical`). ``model='auto'`` chooses per gene: the
      steady-state fit (``stochastic/gmm``) on all cells and the EM on a seeded sample with
      1,000 seeded held-out cells per group (a group with fewer than 3,000 cells keeps 2,000
      or three quarters of them for the fit, whichever is fewer; the EM as
      ``model='dynamical'`` runs it, shared-time refit included); a gene takes the EM's
      parameters when its curve is not flat and either it keeps the refit at the cells'
      shared time (``fit_shared == 1``) or
      its own curve's ``gamma`` is determined (``fit_gamma_free == 0``), its cells are seen
      on the decay branch (5 % of the fit cells at least ``1.4 / beta`` past the
      switch-off, ``fit_reach``), and the curve gives the
      held-out cells a mean log-likelihood (``u``, ``s`` in units of their variances) at
      least 0.05 per cell above the steady-state line ``u = gamma s``; else the
      steady-state ones
      (``var['kinetic_model']`` says which; ``fit_loglik_gain`` the gain). dynamo's
      ``'auto'`` is the steady-state model: here that is the default (``model=None``).
    - labelling (see :class:`dynadask.est.tsc.Labelling`): ``one-shot`` (``ols``/``gmm``),
      ``kin`` (``direct``/``twostep``), ``deg`` (``direct``); summaries are taken per
      labelling time and smoothing never mixes labelling times (moments are computed within
      each time; a graph that links times is rebuilt).

    Moments are computed with :func:`dynadask.tl.moments` when missing (or ``re_smooth``).

    Parameters
    ----------
    adata
        AnnData (in memory or opened from a store) after preprocessing.
    filter_gene_mode
        ``'final'`` (``var['use_for_pca']``), ``'basic'`` (``pass_basic_filter``) or ``'no'``;
        falls back to the next when the column is missing, as dynamo.
    use_smoothed
        Use the moments (``M_*``) rather than the normalised layers (``X_*``).
    model, est_method
        None (dynamo's default: ``stochastic/gmm`` for splicing data, ``deterministic`` for
        labelling), ``'auto'`` (splicing data: the per-gene choice above; labelling: as
        None) or one of the registered combinations (an error lists them).
    group
        obs column: parameters per group, named ``<group>_<value>_<param>``.
    re_smooth
        Recompute the moments.
    cores
        Ignored (Dask's scheduler decides); a warning when not 1.
    tkey
        obs column of labelling times (default ``uns['pp']['tkey']``, else ``'time'``).
    experiment_type
        Override the detected type (``'conventional'``, ``'one-shot'``, ``'kin'``, ``'deg'``,
        ``'mix_std_stm'``: named only, never detected).
    perc_left, perc_right, intercept
        Extreme-cell selection and intercept of the steady-state fits.
    del_2nd_moments
        Drop the second-moment layers (``M_ss``, ``M_us``, ``M_uu``, …) from the AnnData
        afterwards (a store keeps them); None takes dynamo's data store mode
        (``dyn.configuration.DynamoAdataConfig``: False in 'full', True in 'succinct').
    copy
        Work on (and return) a copy.
    **legacy
        dynamo's other arguments (``NTR_vel``, ``assumption_mRNA``, …): accepted; a warning
        when a non-default value is ignored.

    Returns
    -------
    anndata.AnnData
        ``adata`` (the copy when ``copy``), as dynamo returns it.

    Writes
    ------
    var['use_for_dynamics']
        Genes used.
    var[<param>], varm['vel_params'], uns['vel_params_names']
        ``beta, gamma, half_life, gamma_b, gamma_r2, gamma_logLL`` … (prefixed per group).
    layers['velocity_S'] (splicing), layers['velocity_U'], ['velocity_N'], ['velocity_T']
        Velocities (float32, genes outside ``use_for_dynamics`` are 0).
    var['kinetic_model'], var['fit_loglik_gain'], var['fit_dynamical']
        With ``model='auto'``: ``'dynamical'`` or ``'stochastic'`` per gene, the held-out
        log-likelihood gain of the curve over the line, 1 where the EM was taken.
    uns['dynamics']
        The settings used.
    """
    _check_legacy(legacy, cores)
    unique_names(adata)
    adata = adata.copy() if copy else adata
    valid, mode = ds.valid_genes(adata, filter_gene_mode)
    exp = ds.detect_experiment(adata, tkey, experiment_type)
    if exp.tkey is not None and exp.has_labeling:
        varied_time(adata, exp.tkey, exp.experiment_type)
    model, est_method, runner = dm.resolve(exp.experiment_type, model, est_method)
    second = dm.needs_second_moments(model, est_method)
    _ensure_moments(adata, exp, use_smoothed, second, re_smooth, valid, group)
    layers, sec = ds.data_layers(adata, exp, use_smoothed, second)
    codes, names = ds.group_codes(adata, group)
    t = (
        None
        if exp.tkey is None or not exp.has_labeling
        else np.asarray(adata.obs[exp.tkey], dtype=np.float64)
    )
    options = {
        "perc_left": perc_left,
        "perc_right": 5 if perc_right is None else perc_right,
        "perc_right_given": perc_right is not None,
        "intercept": intercept,
    }
    job = dm.Job(layers, sec, valid, codes, len(names), t, model, est_method, options)
    _check_genes(adata, layers, valid)
    params, velocities = runner(job)
    settings = _settings(exp, mode, model, est_method, use_smoothed, group, t)
    _write(adata, params, velocities, valid, group, names, settings)
    if DynamoAdataConfig.use_default_var_if_none(
        del_2nd_moments, DynamoAdataConfig.DYNAMICS_DEL_2ND_MOMENTS_KEY
    ):
        _drop_second_moments(adata)
    return adata  # as dynamo's, also without copy


def _drop_second_moments(adata: ad.AnnData) -> None:
    # dynamo's succinct mode: the second moments (M_ss, M_us, ...) leave the AnnData
    dropped = [k for k in adata.layers if k.startswith("M_") and len(k) == 4]
    for key in dropped:
        del adata.layers[key]
    if dropped and store_path(adata) is not None:
        warnings.warn(
            f"layers {dropped} are dropped from this AnnData; the store keeps them",
            stacklevel=3,
        )


def _check_legacy(legacy: dict, cores: int) -> None:
    unknown = sorted(set(legacy) - set(_IGNORED))
    if unknown:
        raise OptionError(f"dynamics() got unexpected arguments {unknown}")
    for k, v in legacy.items():
        if v != _IGNORED[k]:
            warnings.warn(f"{k}={v!r} is not supported by dynadask and is ignored", stacklevel=3)
    if cores != 1:
        warnings.warn(
            "cores is ignored: the active Dask scheduler decides the parallelism", stacklevel=3
        )


def _ensure_moments(adata, exp, use_smoothed, second, re_smooth, valid, group) -> None:
    if not use_smoothed:
        return
    mixing = exp.tkey is not None and exp.has_labeling and ds.check_time_mixing(adata, exp.tkey)
    if mixing:
        warnings.warn(
            "the smoothing graph moments_con links cells of different labelling "
            "times: recomputing the moments within each labelling time",
            stacklevel=3,
        )
    if ds.moments_present(adata, exp, second) and not (re_smooth or mixing):
        return
    smooth_group = group if group is not None else (exp.tkey if exp.has_labeling else False)
    moments(adata, genes=valid, group=smooth_group)


def _check_genes(adata: ad.AnnData, layers: dict, valid: np.ndarray) -> None:
    if valid.sum() == 0:
        raise InputError("no genes selected for dynamics: use filter_gene_mode='no'")
    name = next(iter(layers))
    if min(adata.n_obs, valid.sum()) < 1:
        raise InputError(f"layer {name!r} has no cells or genes to estimate from")


def _settings(exp, mode, model, est_method, use_smoothed, group, t) -> dict:
    return {
        "filter_gene_mode": mode, "t": "None" if t is None else np.unique(t),
        "group": "None" if group is None else group, "X_data": "None", "X_fit_data": "None",
        "asspt_mRNA": "ss" if exp.experiment_type in ("conventional", "one-shot") else "kinetic",
        "experiment_type": exp.experiment_type, "normalized": True, "model": model,
        "est_method": est_method, "has_splicing": exp.has_splicing,
        "has_labeling": exp.has_labeling, "splicing_labeling": exp.splicing_labeling,
        "has_protein": False, "use_smoothed": use_smoothed, "NTR_vel": False,
        "log_unnormalized": True, "fraction_for_deg": False,
    }  # fmt: skip


def _param_table(params: dict, valid: np.ndarray, g: int) -> dict[str, np.ndarray]:
    table = {}
    for name in (*VEL_PARAMS, *sorted(set(params) - set(VEL_PARAMS))):
        if name == "half_life" and "gamma" in params:
            with np.errstate(divide="ignore"):
                value = np.log(2) / params["gamma"][g]
        elif name in params:
            value = params[name][g]
        elif name in ("beta", "gamma", "half_life", "gamma_b", "gamma_r2", "gamma_logLL"):
            continue
        else:
            value = np.full(valid.sum(), np.nan)
        full = np.full(valid.size, np.nan)
        full[valid] = value
        table[name] = full
    return table


def _write(adata, params, velocities, valid, group, names, settings) -> None:
    var, varm, uns = {"use_for_dynamics": valid}, {}, {}
    for g, name in enumerate(names):
        pre = "" if group is None else f"{group}_{name}_"
        table = _param_table(params, valid, g)
        if "alpha" not in params:
            table.pop("alpha")
        cols = [pre + k for k in table]
        varm[f"{pre}vel_params"] = np.column_stack(list(table.values()))
        uns[f"{pre}vel_params_names"] = cols
        var.update({pre + k: v for k, v in table.items() if not np.all(np.isnan(v))})
        if "fit_dynamical" in table:
            var[pre + "kinetic_model"] = np.where(
                table["fit_dynamical"] == 1, "dynamical", np.where(valid, "stochastic", "")
            )
    uns["dynamics" if group is None else f"{group}_dynamics"] = settings
    commit(adata, "dynamics", layers=velocities, var=var, varm=varm, uns=uns)
