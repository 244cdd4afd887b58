"""Marker genes of cell groups (dynamo's ``find_group_markers`` and ``top_n_markers``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import markers as gm
from ..io import commit
from ..kernels import markers as km
from ._data import layer_data

MAX_VALUES = 20_000_000
"""Non-zero values gathered per pass at most (about 320 MB with their gene and group)."""


def _signed(layer: str | None) -> bool:
    return layer is not None and (
        layer.startswith("velocity") or layer in ("acceleration", "curvature")
    )


def _genes(adata: ad.AnnData, genes: Sequence[str] | None, layer: str | None) -> np.ndarray:
    if genes is not None:
        idx = np.flatnonzero(adata.var_names.isin(list(genes)))
        if idx.size == 0:
            raise InputError("No genes from your genes list appear in your adata object.")
        return idx
    if keys.USE_FOR_DYNAMICS in adata.var:
        return np.flatnonzero(adata.var[keys.USE_FOR_DYNAMICS].to_numpy(dtype=bool))
    return np.arange(adata.n_vars)


def _data(adata: ad.AnnData, genes, layer, cols: np.ndarray) -> Any:
    x = layer_data(adata, layer, cols)
    pp = adata.uns.get("pp", {})
    if genes is None and layer not in (None, "X") and "layers_norm_method" in pp:
        if pp["layers_norm_method"] is None:  # dynamo log-transforms an untransformed layer
            from ..graph.preprocess import log1p_layer

            x = log1p_layer(x)
    return x


def _batches(nnz: np.ndarray, budget: int) -> list[np.ndarray]:
    """Consecutive gene positions whose non-zero values stay within ``budget`` per batch."""
    out, start, total = [], 0, 0
    for i, n in enumerate(nnz):
        if total + n > budget and i > start:
            out.append(np.arange(start, i))
            start, total = i, 0
        total += n
    out.append(np.arange(start, len(nnz)))
    return out


def find_group_markers(
    adata: ad.AnnData,
    group: str,
    genes: Sequence[str] | None = None,
    *,
    layer: str | None = None,
    exp_frac_thresh: float | None = None,
    log2_fc_thresh: float | None = None,
    qval_thresh: float = 0.05,
    de_frequency: int = 1,
    subset_control_vals: bool | None = None,
    max_values: int = MAX_VALUES,
) -> ad.AnnData:
    """Marker genes of each cell group against each other group (Mann-Whitney U).

    For each group (the test group) and each gene whose expressed fraction in it reaches
    ``exp_frac_thresh``, the test group's values are compared with each other group's:
    log2 fold change of the means (difference of means for velocity, acceleration or
    curvature layers), Mann-Whitney U p-value and rank-biserial correlation, specificity
    (1 - Jensen-Shannon distance of the expressed fractions), difference of the fractions of
    positive values; p-values are adjusted per test group (Benjamini-Hochberg) and rows with
    ``qval < qval_thresh`` kept. With ``subset_control_vals`` each control group is cut to
    its ``min(n_test, n_control)`` largest values (absolute values for velocity-like layers).

    Out of core: one pass over the row blocks counts cells, non-zero values and sums per
    group; then the non-zero values of the genes, gathered with their group in passes of at
    most ``max_values`` values, give each group's values of a gene (its zeros and those).
    dynamo sorts a sparse X's control values column-wise (a no-op, so it keeps the last
    cells instead of the largest values) and reports ``diff_ratio_pos`` of a dense layer with
    the test group's count in both terms; dynadask sorts and counts each group's own values.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    group
        obs column of the groups (at least two values).
    genes
        Genes to test (default: ``var['use_for_dynamics']``, else all).
    layer
        Layer (dynamo's log-normalised X when ``None``).
    exp_frac_thresh
        Minimal expressed fraction in the test group (0.1, or 0 for velocity-like layers).
    log2_fc_thresh
        Minimal absolute log2 fold change (1; not used for velocity-like layers).
    qval_thresh
        Maximal q-value of a kept row.
    de_frequency
        Times a gene must appear in a group's table to be one of its ``de_genes``.
    subset_control_vals
        Cut control groups as described (default: not for velocity-like layers).
    max_values
        Non-zero values gathered per pass at most.

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    uns['cluster_markers']
        ``deg_table`` (columns gene, test_group, versus_group, specificity, exp_frac,
        diff_ratio_pos, rbc, log2_fc, pval, qval) and ``de_genes<i>`` per test group.

    Raises
    ------
    dynadask.InputError
        No gene found, or fewer than two groups.
    dynadask.MissingKeyError
        Unknown group column or layer.
    """
    signed = _signed(layer)
    exp_frac_thresh = (0.0 if signed else 0.1) if exp_frac_thresh is None else exp_frac_thresh
    log2_fc_thresh = None if signed else (1 if log2_fc_thresh is None else log2_fc_thresh)
    subset = (not signed) if subset_control_vals is None else subset_control_vals
    cols = _genes(adata, genes, layer)
    if group not in adata.obs:
        raise MissingKeyError(f"group {group} is not a valid key for .obs in your adata object.")
    labels = adata.obs[group].astype(str).to_numpy()
    clusters = list(pd.unique(labels))
    if len(clusters) < 2:
        raise InputError(f"the number of groups for the argument {group} must be at least two.")
    codes = np.array([clusters.index(v) for v in labels], dtype=np.int64)
    x = _data(adata, genes, layer, cols)
    (counts,) = compute(gm.group_counts(x, codes, len(clusters)), desc="marker counts")
    values = _gather(x, codes, counts["nnz"].sum(0), max_values, len(clusters))
    opts = {"exp_frac_thresh": exp_frac_thresh, "log2_fc_thresh": log2_fc_thresh}
    tables, de_genes = [], {}
    names = adata.var_names[cols].to_numpy()
    pairs = (
        [(clusters[0], [clusters[1]])]
        if len(clusters) == 2
        else [(c, sorted(set(clusters) - {c})) for c in clusters]
    )
    for i, (test, controls) in enumerate(pairs):
        table = _test_group(
            values, counts["cells"], clusters, test, controls, names, subset, signed, opts
        )
        table = table[table.qval < qval_thresh].reset_index(drop=True)
        tables.append(table)
        de_genes[i] = [g for g, n in Counter(table["gene"]).items() if n >= de_frequency]
    deg = pd.concat(tables).reset_index(drop=True)
    deg["log2_fc"] = deg["log2_fc"].astype(float)
    record: dict[str, Any] = {"deg_table": deg}
    record.update({f"de_genes{k}": np.asarray(v, dtype=str) for k, v in de_genes.items()})
    commit(adata, "find_group_markers", uns={"cluster_markers": record})
    return adata


def _gather(x, codes, nnz, max_values, n_groups) -> list[list[np.ndarray]]:
    out: list[list[np.ndarray]] = []
    for batch in _batches(nnz, max_values):
        (got,) = compute(gm.gathered_values(x, codes, batch), desc="marker values")
        out.extend(km.split_values(got, batch.size, n_groups))
    return out


def _test_group(values, cells, clusters, test, controls, names, subset, signed, opts):
    t, cs = clusters.index(test), [clusters.index(c) for c in controls]
    n_cells = int(cells.sum())
    rows = []
    for g, per_group in enumerate(values):
        test_vals = km.group_values(per_group[t], int(cells[t]))
        ctrl_vals = [km.group_values(per_group[c], int(cells[c])) for c in cs]
        for i, *stats in km.compare_gene(
            test_vals, ctrl_vals, n_cells, subset=subset, by_abs=signed, **opts
        ):
            rows.append((names[g], controls[i], *stats))
    de = pd.DataFrame(
        rows,
        columns=[
            "gene",
            "versus_group",
            "exp_frac",
            "rbc",
            "log2_fc",
            "pval",
            "specificity",
            "diff_ratio_pos",
        ],
    )
    de = de[de.iloc[:, 2:].sum(1) > 0]
    de["qval"] = km.bh_qvalues(de["pval"].to_numpy()) if de.shape[0] > 1 else np.nan
    de["test_group"] = test
    return de[list(km.COLUMNS)].sort_values(by="qval")


def top_n_markers(
    adata: ad.AnnData,
    with_moran_i: bool = False,
    group_by: str = "test_group",
    *,
    sort_by: str | list[str] = "specificity",
    sort_order: str = "decreasing",
    top_n_genes: int = 5,
    exp_frac_thresh: float = 0.1,
    log2_fc_thresh: float | None = None,
    qval_thresh: float = 0.05,
    specificity_thresh: float = 0.3,
    only_gene_list: bool = False,
    display: bool = True,
) -> list[list[str]] | pd.DataFrame:
    """The top markers of each group from ``uns['cluster_markers']`` (:func:`find_group_markers`).

    Rows pass ``exp_frac > exp_frac_thresh``, ``qval < qval_thresh``, ``specificity >
    specificity_thresh`` and, when the table's fold changes vary, ``log2_fc >
    log2_fc_thresh`` (default 1, or no bound when every ``|log2_fc| < 1``); then the
    ``top_n_genes`` rows by ``sort_by`` per ``group_by`` value.

    Parameters
    ----------
    adata
        AnnData after :func:`find_group_markers`.
    with_moran_i
        Join Moran's I columns of var (not computed by dynadask: they must be present).
    group_by, sort_by, sort_order, top_n_genes
        Grouping column, ranking column(s), ``'decreasing'`` or ``'increasing'``, rows kept.
    exp_frac_thresh, log2_fc_thresh, qval_thresh, specificity_thresh
        Filters as above.
    only_gene_list
        Return the genes of each group (groups in sorted order) instead of the table.
    display
        Print the table.

    Returns
    -------
    pandas.DataFrame or list of list of str
        The top rows (indexed by group and row, as dynamo's), or the genes per group.

    Raises
    ------
    dynadask.MissingKeyError
        No marker table, or Moran's I columns missing.
    dynadask.InputError
        No row passes the filters.
    """
    if "cluster_markers" not in adata.uns:
        raise MissingKeyError(
            "uns['cluster_markers'] is missing: run dyn.tl.find_group_markers(adata, group=...)"
        )
    deg = adata.uns["cluster_markers"]["deg_table"]
    q = "exp_frac > @exp_frac_thresh and qval < @qval_thresh and specificity > @specificity_thresh"
    if len(deg["log2_fc"].unique()) > 1:
        if log2_fc_thresh is None:
            log2_fc_thresh = -np.inf if np.abs(deg["log2_fc"]).max() < 1 else 1
        q += " and log2_fc > @log2_fc_thresh"
    deg = deg.query(q)
    if deg.shape[0] == 0:
        raise InputError(
            "no gene passes the filters: relax exp_frac_thresh, log2_fc_thresh, qval_thresh "
            "or specificity_thresh"
        )
    if with_moran_i:
        moran = ["moran_i", "moran_p_val", "moran_q_val", "moran_z"]
        if len(adata.var.columns.intersection(moran)) != 4:
            raise MissingKeyError(f"var lacks Moran's I columns {moran}")
        deg = deg.merge(adata.var[moran], left_on="gene", right_index=True, how="left")
    pick = "nlargest" if sort_order == "decreasing" else "nsmallest"
    parts = {g: getattr(frame, pick)(top_n_genes, sort_by) for g, frame in deg.groupby(group_by)}
    top = pd.concat(parts, names=[group_by, None])
    if display:
        with pd.option_context(
            "display.max_rows", None, "display.max_columns", None, "display.width", 1000
        ):
            print(top)
    if only_gene_list:
        return [list(top.loc[top[group_by] == g, "gene"]) for g in top[group_by].unique()]
    return top
