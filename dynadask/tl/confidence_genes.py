"""``dyn.tl.gene_wise_confidence``: genes whose velocity contradicts a known lineage order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..est.quantiles import extreme_thresholds
from ..graph.blocks import sum_rows, take_columns
from ..io import commit
from ..kernels import kinetics as kk


def gene_wise_confidence(
    adata: ad.AnnData,
    group: str,
    lineage_dict: Mapping[str, str | Sequence[str]] | None = None,
    *,
    genes: Sequence[str] | None = None,
    ekey: str = keys.M_S,
    vkey: str = keys.VELOCITY_S,
    V_threshold: float = 1,  # noqa: N803 - dynamo's name
) -> None:
    """Score how well each gene's velocity agrees with progenitor -> terminal priors.

    For each lineage (progenitor group -> terminal group) and gene, the gene is taken to be
    induced when its median ``ekey`` expression is higher in the terminal group than in the
    progenitor group, repressed otherwise. With ``thr`` the ``V_threshold``-th percentile of
    the gene's ``|velocity|`` over all cells, the confidence in a group is the fraction of
    its cells with ``v >= thr`` (induction) or ``v <= -thr`` (repression), as dynamo
    computes it. Medians and percentiles are exact (out-of-core quantile passes), counts
    are sums over row blocks.

    Parameters
    ----------
    adata
        AnnData with ``layers[ekey]``, ``layers[vkey]`` (after :func:`dynamics`).
    group
        obs column of cell states.
    lineage_dict
        ``{progenitor: terminal or [terminals]}`` (group values).
    genes
        Genes to score (default: ``var['use_for_dynamics']``, else all).
    ekey, vkey
        Expression and velocity layers.
    V_threshold
        Percentile of ``|velocity|`` used as the threshold.

    Writes
    ------
    var['avg_prog_confidence'], var['avg_mature_confidence']
        Mean confidence over the lineages (NaN for genes not scored).
    uns['gene_wise_confidence']
        Columns ``gene, progenitor, mature, prog_confidence, mature_confidence``; after
        ``dyn.tl.dynamics(model='auto')`` also ``kinetic_model`` (the fit each gene's
        velocity comes from) and ``fit_loglik_gain``.

    Raises
    ------
    ValueError
        Missing layers or group column, no lineage, a group value absent from the data.
    """
    pairs = _lineages(adata, group, lineage_dict)
    idx = _genes(adata, genes)
    for key in (ekey, vkey):
        if key not in adata.layers:
            raise MissingKeyError(f"layer {key!r} is missing: run dyn.tl.dynamics(adata) first")
    names = sorted({n for p in pairs for n in p})
    values = adata.obs[group].astype(str).to_numpy()
    codes = np.array([names.index(v) if v in names else -1 for v in values])
    x = take_columns(adata.layers[ekey], idx)
    v = take_columns(adata.layers[vkey], idx)
    medians = _quantile(x, codes, len(names), 50.0)
    thr = _quantile(abs(v), np.zeros(adata.n_obs, np.int64), 1, V_threshold)[0]
    (counts,) = compute(
        sum_rows(_counts, v, codes, n_strata=len(names), threshold=thr), desc="gene-wise confidence"
    )
    thr_nan = counts["nan"].sum(0) > 0
    table = _table(adata.var_names[idx], pairs, names, medians, counts, thr_nan)
    for key in ("kinetic_model", "fit_loglik_gain"):
        if key in adata.var:
            table[key] = np.tile(adata.var[key].to_numpy()[idx], len(pairs))
    _write(adata, idx, table)


def _counts(v, codes, n_strata, threshold):
    return kk.sign_counts(v, np.asarray(codes).ravel(), n_strata, threshold)


def _quantile(x: Any, codes: np.ndarray, n: int, q: float) -> np.ndarray:
    zero = x * 0
    got = extreme_thresholds(x, zero, codes, n, [q])
    return got["values"][0] * got["grid"]["scale"]["s"]


def _lineages(adata, group, lineage_dict) -> list[tuple[str, str]]:
    if group not in adata.obs:
        raise MissingKeyError(f"group {group!r} is not a column of adata.obs")
    if not lineage_dict:
        raise InputError("lineage_dict is required: {progenitor group: terminal group(s)}")
    present = set(adata.obs[group].astype(str))
    pairs = []
    for prog, matures in lineage_dict.items():
        for mature in [matures] if isinstance(matures, str) else list(matures):
            for name in (prog, mature):
                if str(name) not in present:
                    raise InputError(f"{name!r} is not a value of adata.obs[{group!r}]")
            pairs.append((str(prog), str(mature)))
    return pairs


def _genes(adata, genes) -> np.ndarray:
    if genes is not None:
        mask = adata.var_names.isin(list(genes))
        if not mask.any():
            raise InputError("none of the given genes are in adata.var_names")
        return np.flatnonzero(mask)
    if "use_for_dynamics" in adata.var:
        return np.flatnonzero(adata.var["use_for_dynamics"].to_numpy(dtype=bool))
    return np.arange(adata.n_vars)


def _table(gene_names, pairs, names, medians, counts, thr_nan) -> dict[str, np.ndarray]:
    rows = {k: [] for k in ("gene", "progenitor", "mature", "prog_confidence", "mature_confidence")}
    for prog, mature in pairs:
        p, m = names.index(prog), names.index(mature)
        repressed = medians[p] - medians[m] > 0
        bad = np.where(repressed, counts["above"], counts["below"])
        bad = np.where(thr_nan, 0.0, bad)
        conf = 1 - bad / counts["n"]
        rows["gene"].append(np.asarray(gene_names))
        rows["progenitor"].append(np.full(len(gene_names), prog, dtype=object))
        rows["mature"].append(np.full(len(gene_names), mature, dtype=object))
        rows["prog_confidence"].append(conf[p])
        rows["mature_confidence"].append(conf[m])
    return {k: np.concatenate(v) for k, v in rows.items()}


def _write(adata, idx, table) -> None:
    n_pairs = table["gene"].size // max(idx.size, 1)
    var = {}
    for key, col in (
        ("avg_prog_confidence", "prog_confidence"),
        ("avg_mature_confidence", "mature_confidence"),
    ):
        full = np.full(adata.n_vars, np.nan)
        full[idx] = table[col].reshape(n_pairs, idx.size).mean(axis=0)
        var[key] = full
    table["gene"] = table["gene"].astype(str)
    table["progenitor"] = table["progenitor"].astype(str)
    table["mature"] = table["mature"].astype(str)
    if "kinetic_model" in table:
        table["kinetic_model"] = table["kinetic_model"].astype(str)
    commit(adata, "gene_wise_confidence", var=var, uns={"gene_wise_confidence": table})
