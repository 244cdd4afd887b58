"""scVelo <-> dynamo key conversion (dynamo's ``scv_dyn_convertor``)."""

from __future__ import annotations

from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd

from .._core.compute import compute
from .._core.errors import InputError
from ..io import commit
from ..io.commit import store_path

# layers renamed scVelo name -> dynamo name (``to_scv`` reverses them)
LAYERS = {
    "spliced": "X_spliced",
    "unspliced": "X_unspliced",
    "Ms": "M_s",
    "Mu": "M_u",
    "velocity_u": "velocity_U",
    "velocity": "velocity_S",
}
# scVelo var column -> dynamo kinetic-parameter name, in dynamo's column order
PARAMS = {
    "fit_alpha": "alpha",
    "fit_beta": "beta",
    "fit_gamma": "gamma",
    "fit_r2": "gamma_r2",
    "fit_u0": "u0",
    "fit_s0": "s0",
}
DYNAMICS = {
    "filter_gene_mode": None,
    "t": None,
    "group": None,
    "X_data": None,
    "X_fit_data": None,
    "asspt_mRNA": "ss",
    "experiment_type": "conventional",
    "normalized": True,
    "model": "stochastic",
    "est_method": "gmm",
    "has_splicing": True,
    "has_labeling": False,
    "splicing_labeling": False,
    "has_protein": False,
    "use_smoothed": True,
    "NTR_vel": False,
    "log_unnormalized": True,
    "fraction_for_deg": False,
}
PP = {
    "has_splicing": True,
    "has_labeling": False,
    "splicing_labeling": False,
    "has_protein": False,
    "tkey": None,
    "experiment_type": "conventional",
    "X_norm_method": None,
    "layers_norm_method": None,
}
RECOVER_DYNAMICS = {"fit_connected_states": True, "fit_basal_transcription": None, "use_raw": False}


def scv_dyn_convertor(
    adata: ad.AnnData, mode: str = "to_dyn", kin_param_pre: str = ""
) -> ad.AnnData:
    """Rename an AnnData's keys between scVelo's and dynamo's conventions.

    ``'to_dyn'``: layers ``spliced``/``unspliced``/``Ms``/``Mu``/``velocity``/``velocity_u``
    become ``X_spliced``/``X_unspliced``/``M_s``/``M_u``/``velocity_S``/``velocity_U``; var
    ``highly_variable`` becomes ``use_for_pca``, ``highly_variable_genes`` (strings
    ``'True'``/``'False'``) becomes the boolean ``pass_basic_filter``; the ``fit_*`` kinetic
    columns go into ``varm['<pre>vel_params']`` with their names in
    ``uns['<pre>vel_params_names']``; ``uns['recover_dynamics']`` becomes dynamo's
    ``uns['dynamics']`` record (conventional, stochastic, GMM) and ``uns['pp']`` is set
    (conventional experiment, X not log-transformed). ``'to_scv'`` does the reverse and
    drops ``uns['pp']``.

    On a store, the converted keys are written through one commit; the keys under their
    old names stay in the store (a store element is never deleted) and are only dropped
    from the returned AnnData.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    mode
        ``'to_dyn'`` (scVelo -> dynamo) or ``'to_scv'`` (dynamo -> scVelo).
    kin_param_pre
        Prefix of the kinetic-parameter keys.

    Returns
    -------
    anndata.AnnData
        ``adata``, converted.

    Writes
    ------
    layers, var, varm['<pre>vel_params'], uns['<pre>vel_params_names']
        The renamed keys (``'to_scv'``: the scVelo names).
    uns['dynamics'], uns['pp'] ('to_dyn'), uns['recover_dynamics'] ('to_scv')
        The run records.

    Raises
    ------
    dynadask.InputError
        Unknown mode.
    """
    if mode not in ("to_dyn", "to_scv"):
        raise InputError(f"unknown mode {mode!r}: use 'to_dyn' or 'to_scv'")
    var = adata.var.copy()
    layers, varm, uns, drop_uns, drop_varm = {}, {}, {}, [], []
    names = LAYERS if mode == "to_dyn" else {v: k for k, v in LAYERS.items()}
    for old, new in names.items():
        if old in adata.layers:
            layers[new] = adata.layers[old]
    if mode == "to_dyn":
        _var_to_dyn(var, varm, uns, kin_param_pre)
        if "recover_dynamics" in adata.uns:
            drop_uns.append("recover_dynamics")
            uns["dynamics"] = dict(DYNAMICS)
        uns["pp"] = dict(PP)
    else:
        _var_to_scv(adata, var, kin_param_pre, drop_uns, drop_varm)
        drop_uns.append("pp")
        if "dynamics" in adata.uns:
            drop_uns.append("dynamics")
            uns["recover_dynamics"] = dict(RECOVER_DYNAMICS)
    stored = store_path(adata) is not None
    commit(
        adata,
        "scv_dyn_convertor",
        layers=layers if stored else None,
        varm=varm,
        var=var,
        uns={k: _storable(v) for k, v in uns.items()} if stored else uns,
    )
    _drop(adata, names, layers if not stored else {}, drop_uns, drop_varm, uns)
    return adata


def _drop(adata, names, layers, drop_uns, drop_varm, uns) -> None:
    """Apply the renames in the AnnData object: new layers in, old names, records out."""
    for new, value in layers.items():
        adata.layers[new] = value
    for old in names:
        if old in adata.layers and old not in layers:
            del adata.layers[old]
    for key in drop_uns:
        if key not in uns:
            adata.uns.pop(key, None)
    for key in drop_varm:
        adata.varm.pop(key, None)
    adata.uns.update(uns)


def _storable(value: Any) -> Any:
    """``None`` inside a record is stored as ``'None'`` (as dynamo's own files hold it)."""
    if isinstance(value, dict):
        return {k: "None" if v is None else v for k, v in value.items()}
    return value


def _var_to_dyn(var: pd.DataFrame, varm: dict, uns: dict, pre: str) -> None:
    if "highly_variable_genes" in var.columns:
        flags = var.pop("highly_variable_genes")
        var["pass_basic_filter"] = np.asarray([item == "True" for item in flags], dtype=bool)
    if "highly_variable" in var.columns:
        var["use_for_pca"] = var.pop("highly_variable")
    values, names = [], []
    for col, name in PARAMS.items():
        if col in var.columns:
            values.append(np.asarray(var.pop(col), dtype=np.float64))
            names.append(name)
    if names:
        varm[f"{pre}vel_params"] = np.column_stack(values)
        uns[f"{pre}vel_params_names"] = names


def _var_to_scv(
    adata: ad.AnnData, var: pd.DataFrame, pre: str, drop_uns: list, drop_varm: list
) -> None:
    if "pass_basic_filter" in var.columns:
        flags = var.pop("pass_basic_filter")
        var["highly_variable_genes"] = ["True" if item else "False" for item in flags]
    if "use_for_pca" in var.columns:
        var["highly_variable"] = var.pop("use_for_pca")
    key = f"{pre}vel_params"
    if key in adata.varm:
        table = adata.varm[key]
        table = np.asarray(compute(table)[0] if isinstance(table, da.Array) else table)
        names = list(adata.uns.get(f"{pre}vel_params_names", []))
        for col, name in PARAMS.items():
            if name in names:
                var[col] = table[:, names.index(name)]
        drop_varm.append(key)
        drop_uns.append(f"{pre}vel_params_names")
