"""Gene rankings per cell group: ``dyn.vf.rank_genes`` and its velocity-field forms.

A ranking pools a cells x genes array (a layer such as ``velocity_S``, ``acceleration`` or
``curvature``, or the gene-wise Jacobian diagonal) over the cells of each group and sorts
the genes by the pooled value, largest first. As in dynamo, the genes are those of
``var['use_for_dynamics']`` (when the column exists), restricted by ``genes``, and NaN values
count as 0. The pooling is one map-reduce over row blocks (per-group sums, counts, maxima
and minima, :mod:`dynadask.graph.rank`), so the array is read once and never held whole:
the same call works on an in-memory AnnData and on one opened from a store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError, OptionError
from ..graph import rank as gr
from ..graph.blocks import take_columns
from ..io import commit
from ..kernels import rank as kr
from .calculus import _field
from .gene_space import field_genes, field_inputs

_POOLS: dict[Any, str] = {
    None: "mean",
    "mean": "mean",
    "sum": "sum",
    "max": "max",
    "min": "min",
    np.mean: "mean",
    np.nanmean: "mean",
    np.sum: "sum",
    np.nansum: "sum",
    np.max: "max",
    np.nanmax: "max",
    np.min: "min",
    np.nanmin: "min",
}
_OPTIONS = ("groups", "genes", "normalize", "fcn_pool", "dtype", "output_values")


def rank_genes(
    adata: ad.AnnData,
    arr_key: str | np.ndarray | da.Array,
    groups: str | Sequence | np.ndarray | None = None,
    *,
    genes: str | Sequence[str] | np.ndarray | None = None,
    abs: bool = False,  # noqa: A002 - dynamo's name
    normalize: bool = False,
    fcn_pool: str | Callable | None = "mean",
    dtype: Any = None,
    output_values: bool = False,
) -> pd.DataFrame:
    """Rank genes by a cells x genes array pooled over each cell group (largest first).

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed).
    arr_key
        A layer (cells x genes) or a var column (one value per gene; ``groups`` is then
        ignored), or such an array itself (``n_obs x n_vars`` or ``n_vars``; numpy, sparse
        or Dask).
    groups
        An obs column (or one label per cell) defining the groups; ``None``: one group,
        ``'all'``. Cells with a missing label are left out.
    genes
        The genes to rank among ``var['use_for_dynamics']``: names, a boolean mask over
        var or the name of a boolean var column. Default: all of ``use_for_dynamics``
        (every gene when the column is absent).
    abs
        Pool absolute values.
    normalize
        Divide each gene's values by their largest absolute value over the cells first.
    fcn_pool
        The pooling: ``'mean'`` (default), ``'sum'``, ``'max'`` or ``'min'``, or numpy's
        ``mean``/``nanmean``/``sum``/``nansum``/``max``/``nanmax``/``min``/``nanmin``
        (values are pooled block by block, so an arbitrary function is not accepted; NaN
        already counts as 0, so the ``nan`` forms equal the others).
    dtype
        Cast the values to this dtype before pooling.
    output_values
        Add a ``<group>_values`` column with the pooled values after each group's genes.

    Returns
    -------
    pandas.DataFrame
        One column of gene names per group (sorted by the pooled value, largest first).

    Writes
    ------
    Nothing.

    Raises
    ------
    ValueError
        Unknown key, groups or genes, no gene left to rank, an array of the wrong shape.
    TypeError
        An ``fcn_pool`` that cannot be pooled block by block.
    """
    how = _pool_name(fcn_pool)
    names, array = _gene_array(adata, arr_key, genes)
    (table,) = _rank(adata, array, names, groups, how, normalize, dtype, output_values, [abs])
    return table


def rank_velocity_genes(
    adata: ad.AnnData, vkey: str = keys.VELOCITY_S, prefix_store: str = "rank", **kwargs: Any
) -> ad.AnnData:
    """Rank genes by their velocity and their absolute velocity in each cell group.

    Parameters
    ----------
    adata
        AnnData with ``layers[vkey]`` (from :func:`dynadask.tl.dynamics`).
    vkey
        The velocity layer.
    prefix_store
        Prefix of the uns keys.
    **kwargs
        :func:`rank_genes`' ``groups``, ``genes``, ``normalize``, ``fcn_pool``, ``dtype``,
        ``output_values``.

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    uns['<prefix_store>_<vkey>'], uns['<prefix_store>_abs_<vkey>']
        Gene names per group, ranked by the pooled velocity and by the pooled absolute
        velocity (DataFrames as :func:`rank_genes` returns them).
    """
    hint = "run dyn.tl.dynamics(adata) first (it writes the velocity layers)"
    return _rank_pair(adata, vkey, prefix_store, "rank_velocity_genes", hint, kwargs)


def rank_acceleration_genes(
    adata: ad.AnnData, akey: str = "acceleration", prefix_store: str = "rank", **kwargs: Any
) -> ad.AnnData:
    """Rank genes by their acceleration and their absolute acceleration in each cell group.

    Parameters
    ----------
    adata
        AnnData with ``layers[akey]`` (gene-space acceleration, from
        :func:`dynadask.vf.acceleration` with ``basis='pca'``).
    akey
        The acceleration layer.
    prefix_store
        Prefix of the uns keys.
    **kwargs
        :func:`rank_genes`' options (``groups``, ``genes``, ...).

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    uns['<prefix_store>_<akey>'], uns['<prefix_store>_abs_<akey>']
        Gene names per group, ranked by the pooled acceleration and its absolute value.
    """
    hint = "run dyn.vf.acceleration(adata, basis='pca') first (it writes layers['acceleration'])"
    return _rank_pair(adata, akey, prefix_store, "rank_acceleration_genes", hint, kwargs)


def rank_curvature_genes(
    adata: ad.AnnData, ckey: str = "curvature", prefix_store: str = "rank", **kwargs: Any
) -> ad.AnnData:
    """Rank genes by their curvature and their absolute curvature in each cell group.

    Parameters
    ----------
    adata
        AnnData with ``layers[ckey]`` (gene-space curvature, from
        :func:`dynadask.vf.curvature` with ``basis='pca'``).
    ckey
        The curvature layer.
    prefix_store
        Prefix of the uns keys.
    **kwargs
        :func:`rank_genes`' options (``groups``, ``genes``, ...).

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    uns['<prefix_store>_<ckey>'], uns['<prefix_store>_abs_<ckey>']
        Gene names per group, ranked by the pooled curvature and its absolute value.
    """
    hint = "run dyn.vf.curvature(adata, basis='pca') first (it writes layers['curvature'])"
    return _rank_pair(adata, ckey, prefix_store, "rank_curvature_genes", hint, kwargs)


def rank_divergence_genes(
    adata: ad.AnnData,
    jkey: str = "jacobian_pca",
    genes: Sequence[str] | None = None,
    *,
    prefix_store: str = "rank_div_gene",
    Qkey: str = "PCs",  # noqa: N803 - dynamo's name
    **kwargs: Any,
) -> pd.DataFrame:
    """Rank genes by their self-regulation ``d f_g / d x_g`` (the Jacobian's diagonal) per group.

    The diagonal is evaluated from the learned field itself, one row block of cells at a
    time: for a PCA field ``q_g^T J(x) q_g`` with ``q_g`` the gene's row of the loadings
    ``uns[Qkey]``, for a gene-space field (``jkey='jacobian'``) ``J_gg``. It is the diagonal
    of dynamo's ``uns['jacobian_pca']['jacobian_gene']``, without reading that array.

    Parameters
    ----------
    adata
        AnnData with the field ``uns['VecFld_<basis>']`` of ``jkey = 'jacobian_<basis>'``.
    jkey
        The Jacobian's uns key. When present, its ``regulators`` (which must equal its
        ``effectors``) are the genes and its ``cell_idx`` the cells; when absent, pass
        ``genes`` and every cell is used.
    genes
        Restrict to these genes (with ``uns[jkey]``), or the genes to rank (without).
    prefix_store
        Prefix of the uns key.
    Qkey
        The PCA loadings (``uns`` or ``varm``, over ``var['use_for_pca']``).
    **kwargs
        :func:`rank_genes`' ``groups``, ``abs``, ``normalize``, ``fcn_pool``, ``dtype``,
        ``output_values``.

    Returns
    -------
    pandas.DataFrame
        Gene names per group, ranked by the pooled diagonal (mean over the evaluated cells
        of the group; dynamo counts the cells outside ``cell_idx`` as zeros).

    Writes
    ------
    uns['<prefix_store>_<jkey>']
        The ranking.

    Raises
    ------
    ValueError
        No Jacobian record and no genes, regulators that differ from effectors, a missing
        field or loadings, genes without loadings.
    """
    allowed = [o for o in _OPTIONS if o != "genes"] + ["abs"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown}: use {allowed}")
    how = _pool_name(kwargs.pop("fcn_pool", "mean"))
    gene_list, cells, basis = _jacobian_genes(adata, jkey, genes)
    names = np.asarray(adata.var_names[_gene_mask(adata, gene_list)])
    X, fit, Q = _diagonal_field(adata, basis, names, Qkey)
    cells = np.arange(adata.n_obs) if cells is None else cells
    x = X if cells.size == adata.n_obs and np.all(cells == np.arange(adata.n_obs)) else X[cells]
    diag = gr.jacobian_diagonal(x, fit["X_ctrl"], fit["C"], fit["beta"], Q)
    codes, labels = _codes(adata, kwargs.pop("groups", None))
    (table,) = _rank(
        adata,
        diag,
        names,
        (codes[cells], labels),
        how,
        kwargs.pop("normalize", False),
        kwargs.pop("dtype", None),
        kwargs.pop("output_values", False),
        [kwargs.pop("abs", False)],
    )
    commit(adata, "rank_divergence_genes", uns={f"{prefix_store}_{jkey}": table})
    return table


# ------------------------------------------------------------------------------------------
# the shared machinery


def _rank_pair(adata, key, prefix, stage, hint, kwargs) -> ad.AnnData:
    """Rank by ``key`` and by ``|key|`` in one pass; commit both tables."""
    if "abs" in kwargs:
        raise OptionError(
            "abs is not an option here: both the signed and the absolute rankings are written"
        )
    unknown = sorted(set(kwargs) - set(_OPTIONS))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown}: use {list(_OPTIONS)}")
    if isinstance(key, str) and key not in adata.layers and key not in adata.var:
        raise MissingKeyError(f"no layers[{key!r}] (nor var[{key!r}]): {hint}")
    how = _pool_name(kwargs.get("fcn_pool", "mean"))
    names, array = _gene_array(adata, key, kwargs.get("genes"))
    signed, absolute = _rank(
        adata,
        array,
        names,
        kwargs.get("groups"),
        how,
        kwargs.get("normalize", False),
        kwargs.get("dtype"),
        kwargs.get("output_values", False),
        [False, True],
    )
    commit(adata, stage, uns={f"{prefix}_{key}": signed, f"{prefix}_abs_{key}": absolute})
    return adata


def _pool_name(fcn_pool: Any) -> str:
    try:
        return _POOLS[fcn_pool]
    except (KeyError, TypeError):
        raise OptionError(
            f"fcn_pool {fcn_pool!r} cannot be pooled block by block: use 'mean' (dynamo's "
            "default), 'sum', 'max' or 'min' (or numpy's mean, sum, max, min)"
        ) from None


def _gene_mask(adata: ad.AnnData, genes: Any) -> np.ndarray:
    """The genes to rank (a boolean mask): ``genes`` within ``var['use_for_dynamics']``."""
    dyn_genes = (
        adata.var[keys.USE_FOR_DYNAMICS].to_numpy(dtype=bool)
        if keys.USE_FOR_DYNAMICS in adata.var
        else np.ones(adata.n_vars, dtype=bool)
    )
    if genes is None:
        mask = dyn_genes
    elif isinstance(genes, str):
        if genes not in adata.var:
            raise InputError(f"genes={genes!r} is not a var column: pass gene names or a mask")
        mask = adata.var[genes].to_numpy(dtype=bool) & dyn_genes
    else:
        arr = np.asarray(genes)
        if arr.dtype == bool:
            if arr.shape != (adata.n_vars,):
                raise InputError(
                    f"a boolean genes mask needs {adata.n_vars} values, not {arr.size}"
                )
            mask = arr & dyn_genes
        else:
            arr = arr.astype(str)
            missing = arr[~np.isin(arr, adata.var_names)]
            if missing.size:
                raise InputError(
                    f"{missing.size} gene(s) not in var_names, e.g. {list(missing[:5])}: "
                    "check the names (adata.var_names)"
                )
            mask = adata.var_names.isin(arr) & dyn_genes
    if not mask.any():
        raise MissingKeyError(
            "no gene to rank: the genes given are not among var['use_for_dynamics'] "
            "(pass genes that dyn.tl.dynamics used)"
        )
    return mask


def _gene_array(adata: ad.AnnData, arr_key: Any, genes: Any) -> tuple[np.ndarray, Any]:
    """Names of the ranked genes and their values (cells x genes, or one per gene)."""
    mask = _gene_mask(adata, genes)
    cols = np.flatnonzero(mask)
    names = np.asarray(adata.var_names[cols])
    if isinstance(arr_key, str):
        if arr_key in adata.layers:
            return names, take_columns(adata.layers[arr_key], cols)
        if arr_key in adata.var:
            return names, adata.var[arr_key].to_numpy(dtype=np.float64)[cols]
        raise MissingKeyError(f"{arr_key!r} is neither a layer nor a var column")
    arr = arr_key
    if arr.ndim == 1 and arr.shape[0] == adata.n_vars:
        return names, np.asarray(arr, dtype=np.float64)[cols]
    if arr.ndim == 2 and arr.shape == adata.shape:
        return names, take_columns(arr, cols)
    raise InputError(
        f"an array to rank must be n_obs x n_vars {adata.shape} or have n_vars values, "
        f"not {arr.shape}"
    )


def _codes(adata: ad.AnnData, groups: Any) -> tuple[np.ndarray, list[str]]:
    """Group code per cell (-1 for a missing label) and the group names (sorted)."""
    if groups is None:
        return np.zeros(adata.n_obs, dtype=np.int64), ["all"]
    if isinstance(groups, str):
        if groups not in adata.obs:
            raise MissingKeyError(
                f"groups={groups!r} is not an obs column: choose one of {list(adata.obs)[:10]}"
            )
        values = adata.obs[groups]
    else:
        values = pd.Series(np.asarray(groups))
        if values.size != adata.n_obs:
            raise InputError(f"groups needs one label per cell ({adata.n_obs}), not {values.size}")
    missing = values.isna().to_numpy()
    labels = values.astype(str).to_numpy()
    names = np.unique(labels[~missing])
    codes = np.searchsorted(names, labels)
    codes[missing] = -1
    return codes.astype(np.int64), [str(n) for n in names]


def _rank(adata, array, names, groups, how, normalize, dtype, output_values, variants):
    """One table per entry of ``variants`` (abs or not) from one pass over ``array``."""
    if np.ndim(array) == 1:  # one value per gene: groups do not apply
        values = np.asarray(array, dtype=np.float64)
        values = np.where(np.isfinite(values), values, 0.0)
        tables = []
        for absolute in variants:
            v = np.abs(values) if absolute else values
            tables.append(_table(["all"], v[None, :], names, output_values))
        return tables
    codes, labels = groups if isinstance(groups, tuple) else _codes(adata, groups)
    (stats,) = compute(gr.group_stats(array, codes, len(labels), dtype=dtype), desc="gene ranking")
    tables = []
    for absolute in variants:
        pooled = kr.pool(stats, how, absolute)
        if normalize:
            scale = kr.column_abs_max(stats)
            with np.errstate(invalid="ignore", divide="ignore"):
                pooled = np.where(scale > 0, pooled / scale, 0.0)
        tables.append(_table(labels, pooled, names, output_values))
    return tables


def _table(labels, pooled, names, output_values) -> pd.DataFrame:
    out: dict[str, Any] = {}
    for label, values in zip(labels, pooled, strict=True):
        order = np.argsort(values)[::-1]
        out[label] = names[order]
        if output_values:
            out[f"{label}_values"] = values[order]
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------
# the Jacobian's diagonal


def _jacobian_genes(adata, jkey, genes) -> tuple[list[str], np.ndarray | None, str | None]:
    """Genes, cells and basis of a diagonal ranking from ``uns[jkey]`` or ``genes``."""
    info = adata.uns.get(jkey)
    basis = None
    if isinstance(info, dict) and info.get("basis") is not None:
        basis = str(info["basis"])
    elif jkey.startswith("jacobian_"):
        basis = jkey[len("jacobian_") :]
    elif jkey != "jacobian":
        raise InputError(
            f"cannot tell the field of jkey={jkey!r}: use 'jacobian_<basis>' (e.g. "
            "'jacobian_pca') or 'jacobian' for a gene-space field"
        )
    if info is None:
        if genes is None:
            raise MissingKeyError(
                f"no uns[{jkey!r}]: run dyn.vf.jacobian(adata, regulators=genes, "
                "effectors=genes) first, or pass genes= to rank those genes' Jacobian "
                "diagonals directly"
            )
        return [str(g) for g in np.atleast_1d(genes)], None, basis
    regulators = [str(g) for g in np.atleast_1d(info["regulators"])]
    effectors = [str(g) for g in np.atleast_1d(info["effectors"])]
    if regulators != effectors:
        raise InputError(
            f"uns[{jkey!r}] has different regulators and effectors: the diagonal needs the "
            "same genes on both sides (dyn.vf.jacobian(adata, regulators=g, effectors=g))"
        )
    chosen = regulators
    if genes is not None:
        keep = set(np.atleast_1d(genes).astype(str))
        chosen = [g for g in regulators if g in keep]
    cells = info.get("cell_idx")
    cells = None if cells is None else np.asarray(cells, dtype=np.int64)
    return chosen, cells, basis


def _diagonal_field(adata, basis, names, Qkey) -> tuple[Any, dict, np.ndarray]:
    """Cell coordinates, fit and per-gene loadings (genes x d) for the diagonal."""
    if basis is None:  # gene-space field
        vf = adata.uns.get("VecFld")
        if vf is None or "genes" not in vf:
            raise MissingKeyError(
                "no gene-space field uns['VecFld']: run dyn.vf.VectorField(adata, basis=None)"
            )
        genes_of_field = field_genes(vf)
        pos = pd.Index(genes_of_field).get_indexer(names)
        if (pos < 0).any():
            raise InputError(
                f"genes {list(names[pos < 0][:5])} are not in the gene-space field: "
                "refit with them in genes="
            )
        X, fit = field_inputs(adata, vf)
        Q = np.eye(genes_of_field.size)[pos]
        return X, fit, Q
    if basis != "pca":
        raise InputError(
            f"gene-wise Jacobians need a PCA field (jkey='jacobian_pca') or a gene-space field "
            f"(jkey='jacobian'); basis {basis!r} has no way back to genes"
        )
    X, fit = _field(adata, basis, "analytical")
    Q = adata.uns.get(Qkey) if Qkey in adata.uns else adata.varm.get(Qkey)
    if Q is None or keys.USE_FOR_PCA not in adata.var:
        raise MissingKeyError(
            f"no PCA loadings uns[{Qkey!r}] with var['use_for_pca']: run dyn.pp.pca (or the "
            "recipe) so that the field's components can be taken back to genes"
        )
    Q = np.asarray(Q, dtype=np.float64)
    pca_genes = np.flatnonzero(adata.var[keys.USE_FOR_PCA].to_numpy(dtype=bool))
    if Q.shape[0] == adata.n_vars and pca_genes.size != adata.n_vars:
        Q = Q[pca_genes]
    pos = pd.Index(adata.var_names[pca_genes]).get_indexer(names)
    if (pos < 0).any():
        raise InputError(
            f"genes {list(names[pos < 0][:5])} are not among var['use_for_pca']: they have "
            "no PCA loadings, so no gene-wise Jacobian"
        )
    d = fit["X_ctrl"].shape[1]
    return X, fit, Q[pos, :d]
