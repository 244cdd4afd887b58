"""Inputs of ``dyn.tl.dynamics``: genes, experiment type, cell groups and the data layers."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
from scipy import sparse

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import kinetics as gk

EXPERIMENT_TYPES = ("conventional", "one-shot", "kin", "deg", "mix_std_stm")
ALIASES = {"one_shot": "one-shot", "kinetics": "kin", "degradation": "deg"}
# data each experiment reads: smoothed layer names (their normalised layers: keys.NORMALISED)
FIRST = {
    "conventional": {"u": keys.M_U, "s": keys.M_S},
    "new/total": {"new": keys.M_N, "total": keys.M_T},
    "uu/ul/su/sl": {k: keys.moment_key(k) for k in keys.LABELLING_LAYERS},
}
SECOND = {
    "conventional": {"us": keys.M_US, "ss": keys.M_SS},
    "new/total": {"tn": keys.M_TN, "tt": keys.M_TT},
    "uu/ul/su/sl": {},
}


@dataclass
class Experiment:
    """What the AnnData holds: experiment type, layer family, time key."""

    experiment_type: str
    family: str
    tkey: str | None
    has_splicing: bool
    has_labeling: bool
    splicing_labeling: bool


def valid_genes(adata: ad.AnnData, filter_gene_mode: str) -> tuple[np.ndarray, str]:
    """Genes used for dynamics (dynamo's ``filter_gene_mode``) and the mode actually used."""
    modes = {"final": keys.USE_FOR_PCA, "basic": keys.PASS_BASIC_FILTER, "no": None}
    if filter_gene_mode not in modes:
        raise InputError(f"filter_gene_mode must be one of {list(modes)}, got {filter_gene_mode!r}")
    order = list(modes)
    for mode in order[order.index(filter_gene_mode) :]:
        col = modes[mode]
        if col is None:
            return np.ones(adata.n_vars, dtype=bool), mode
        if col in adata.var:
            mask = np.asarray(adata.var[col], dtype=bool)
            if not mask.any():
                raise InputError(
                    f"no gene has var[{col!r}] True: run the preprocessing again "
                    "or use filter_gene_mode='no'"
                )
            return mask, mode
    raise AssertionError("unreachable")  # pragma: no cover


def detect_experiment(
    adata: ad.AnnData, tkey: str | None, experiment_type: str | None
) -> Experiment:
    """Experiment type from the argument, ``uns['pp']`` or the layers present.

    Splicing layers alone -> ``conventional``. Labelling layers (``new/total`` or
    ``uu/ul/su/sl``) with a time column -> ``one-shot`` for one labelling time, otherwise
    ``kin`` when the labelled fraction grows with time and ``deg`` when it falls. The mixed
    steady-state/stimulation design (``mix_std_stm``) is only taken when named.
    """
    present = set(adata.layers) | {k[2:] for k in adata.layers if k.startswith(("X_", "M_"))}
    present |= {k[2:] for k in adata.layers if k.startswith("M_")}
    spl_lab = set(keys.LABELLING_LAYERS) <= present
    labelled = spl_lab or {"new", "total"} <= present or {"n", "t"} <= present
    splicing = spl_lab or {"spliced", "unspliced"} <= present or {"s", "u"} <= present
    if not labelled and not splicing:
        raise InputError(
            "no expression layers for dynamics: need spliced/unspliced (or their "
            "moments M_s/M_u), new/total or uu/ul/su/sl layers"
        )
    family = "uu/ul/su/sl" if spl_lab else "new/total" if labelled else "conventional"
    pp = adata.uns.get("pp", {}) if isinstance(adata.uns.get("pp"), Mapping) else {}
    tkey = tkey if tkey is not None else _none(pp.get("tkey"))
    given = experiment_type or _none(pp.get("experiment_type"))
    given = ALIASES.get(given, given)
    if given is not None and given not in EXPERIMENT_TYPES:
        raise InputError(
            f"experiment_type {given!r} is not supported: use one of {EXPERIMENT_TYPES}"
        )
    if labelled:
        tkey = _check_time(adata, tkey)
    if given is None:
        given = "conventional" if not labelled else _infer_labelling(adata, tkey, family)
    if given != "conventional" and not labelled:
        raise InputError(
            f"experiment_type {given!r} needs labelling layers (new/total or "
            "uu/ul/su/sl) but the AnnData has only splicing layers"
        )
    if given == "conventional" and family != "conventional":
        family = "conventional" if {"spliced", "unspliced"} <= present else family
    return Experiment(given, family, tkey, splicing, labelled, spl_lab)


def _none(x: Any) -> Any:
    return None if x is None or (isinstance(x, str) and x == "None") else x


def _check_time(adata: ad.AnnData, tkey: str | None) -> str:
    if tkey is None and "time" in adata.obs:
        tkey = "time"
    if tkey is None or tkey not in adata.obs:
        raise MissingKeyError(
            f"labelling layers are present but the time column tkey={tkey!r} is "
            "not in adata.obs: pass tkey=<obs column with each cell's labelling "
            "time>"
        )
    t = np.asarray(adata.obs[tkey], dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise InputError(f"obs[{tkey!r}] has missing or infinite labelling times")
    if np.max(t) > 60:
        warnings.warn("labelling times above 60: hours are the recommended unit", stacklevel=4)
    return tkey


def _infer_labelling(adata: ad.AnnData, tkey: str, family: str) -> str:
    """one-shot for one time, else kin or deg from the trend of the labelled fraction."""
    t = np.asarray(adata.obs[tkey], dtype=np.float64)
    times, codes = np.unique(t, return_inverse=True)
    if times.size == 1:
        return "one-shot"
    names = ("ul", "sl", "uu", "su") if family == "uu/ul/su/sl" else keys.NEW_TOTAL
    lays = {
        n: adata.layers[n] if n in adata.layers else adata.layers[keys.normalised_key(n)]
        for n in names
    }
    terms = {n: (n,) for n in names}
    (st,) = compute(gk.product_sums(lays, codes, times.size, terms), desc="labelled fraction")
    per_gene = {k: v.sum(axis=1) for k, v in st.items()}
    if family == "uu/ul/su/sl":
        new = per_gene["ul"] + per_gene["sl"]
        total = new + per_gene["uu"] + per_gene["su"]
    else:
        new, total = per_gene["new"], per_gene["total"]
    frac = new / np.where(total > 0, total, 1)
    return "kin" if np.polyfit(times, frac, 1)[0] > 0 else "deg"


def group_codes(adata: ad.AnnData, group: str | None) -> tuple[np.ndarray, list[str]]:
    """Integer group of each cell and the group names (one group of all cells for None)."""
    if group is None:
        return np.zeros(adata.n_obs, dtype=np.int64), ["_all_cells"]
    if group not in adata.obs:
        raise MissingKeyError(
            f"group {group!r} is not a column of adata.obs (have {list(adata.obs.columns)})"
        )
    values = adata.obs[group].astype(str).to_numpy()
    names, codes = np.unique(values, return_inverse=True)
    small = [n for n, c in zip(names, np.bincount(codes), strict=True) if c < 50]
    if small:
        warnings.warn(
            f"groups with fewer than 50 cells give noisy parameters: {small[:5]}", stacklevel=3
        )
    return codes.astype(np.int64), [str(n) for n in names]


def moments_present(adata: ad.AnnData, exp: Experiment, second: bool) -> bool:
    """Whether the smoothed layers this estimation reads are all there."""
    need = list(FIRST[exp.family].values())
    if second:
        need += list(SECOND[exp.family].values())
    return all(k in adata.layers for k in need)


def check_time_mixing(adata: ad.AnnData, tkey: str) -> bool:
    """True when ``obsp['moments_con']`` links cells of different labelling times."""
    con = adata.obsp.get(keys.MOMENTS_CON) if keys.MOMENTS_CON in adata.obsp else None
    if con is None:
        return False
    if not sparse.issparse(con):
        (con,) = compute(con, desc="read moments_con") if hasattr(con, "dask") else (con,)
    coo = sparse.coo_matrix(con)
    t = np.asarray(adata.obs[tkey])
    return bool(np.any(t[coo.row] != t[coo.col]))


def data_layers(
    adata: ad.AnnData, exp: Experiment, use_smoothed: bool, second: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first-moment (or normalised) layers and second moments the estimation reads."""
    first, out = FIRST[exp.family], {}
    for name, layer in first.items():
        key = layer if use_smoothed else keys.NORMALISED[layer]
        if key not in adata.layers:
            fix = "run dyn.tl.moments(adata)" if use_smoothed else "run dyn.pp.recipe_monocle"
            raise MissingKeyError(f"layer {key!r} is missing: {fix} first")
        out[name] = adata.layers[key]
    sec = {}
    if second:
        for name, layer in SECOND[exp.family].items():
            if layer not in adata.layers:
                raise MissingKeyError(
                    f"layer {layer!r} (second moments) is missing: run "
                    "dyn.tl.moments(adata) or use model='deterministic'"
                )
            sec[name] = adata.layers[layer]
    return out, sec
