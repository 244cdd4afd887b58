"""Quality control: basic statistics and dynamo's basic cell and gene filters (one data pass)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import markers as gmarkers
from ..graph.preprocess import qc_sums
from ..io import store_path
from ._inputs import RAW_LAYERS, fit_cells, raw_layers, subset_cells, subset_in_place
from ._pending import Pending

INF = np.inf
_NOT_SHARED = ("new", "labelled", "labeled")


@dataclass
class QCSums:
    """Per-cell and per-gene counts of the raw layers (``'X'`` first), from one pass."""

    names: list[str]
    cells: np.ndarray  # n_cells x (2 L + 1 + 2): nGenes, total per layer; mito; shared sets
    ncells: np.ndarray  # L x n_genes
    sums: np.ndarray  # L x n_genes
    shared_genes: np.ndarray  # 2 x n_genes: all raw layers; without new
    kept: np.ndarray | None = None  # cells the per-gene sums cover (None: all)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return self.cells.shape[0]

    @property
    def n_kept(self) -> int:
        """Number of cells the per-gene sums cover."""
        return self.n_cells if self.kept is None else int(self.kept.sum())

    def n_genes_of(self, name: str) -> np.ndarray:
        """Genes detected per cell in layer ``name``."""
        return self.cells[:, 2 * self.names.index(name)]

    def total_of(self, name: str) -> np.ndarray:
        """Total counts per cell in layer ``name``."""
        return self.cells[:, 2 * self.names.index(name) + 1]

    def shared_cells(self) -> np.ndarray:
        """Shared counts per cell over all raw layers."""
        return self.cells[:, 2 * len(self.names) + 1]

    @property
    def mito(self) -> np.ndarray:
        """Mitochondrial counts per cell in X."""
        return self.cells[:, 2 * len(self.names)]


def mito_genes(adata: ad.AnnData) -> np.ndarray:
    """Boolean mask of mitochondrial genes (names starting with MT-, any case)."""
    return np.asarray(adata.var_names.astype(str).str.upper().str.startswith("MT-"), dtype=bool)


def qc_pass(adata: ad.AnnData, cells: np.ndarray | None = None) -> QCSums:
    """Compute every per-cell and per-gene count of X and the raw layers in one pass.

    ``cells`` (boolean mask) restricts the per-gene sums to those cells.

    Raises
    ------
    ValueError
        If a layer holds NaN, infinite or negative values, or there is no X/spliced/total.
    """
    layers = raw_layers(adata)
    names = list(layers)
    raw = [n for n in names if n != "X"]
    shared = [raw, [n for n in raw if n not in _NOT_SHARED]]
    per_cell, genes = qc_sums(layers, mito=mito_genes(adata), shared=shared, cells=cells)
    per_cell, genes = compute(per_cell, genes, desc="QC counts")
    return QCSums(
        names, np.asarray(per_cell), genes["ncells"], genes["sum"], genes["shared"], cells
    )


def stats_columns(qc: QCSums) -> tuple[dict, dict]:
    """Return dynamo's basic statistics of X: obs nGenes, nCounts, pMito; var nCells, nCounts."""
    total = qc.total_of("X")
    with np.errstate(divide="ignore", invalid="ignore"):
        p_mito = np.where(total > 0, qc.mito / total, 0.0)
    obs = {"nGenes": qc.n_genes_of("X").astype(np.int64), "nCounts": total, "pMito": p_mito}
    var = {"nCells": qc.ncells[0].astype(np.int64), "nCounts": qc.sums[0]}
    return obs, var


@dataclass(frozen=True)
class CellFilter:
    """Thresholds of the basic cell filter (dynamo's names and defaults)."""

    layer: str | list[str] = "all"
    min_expr_genes_s: float = 50
    min_expr_genes_u: float = 25
    min_expr_genes_p: float = 1
    max_expr_genes_s: float = INF
    max_expr_genes_u: float = INF
    max_expr_genes_p: float = INF
    max_pmito_s: float | None = None
    shared_count: float | None = None

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Detected-gene range of each layer the filter may use."""
        s = (self.min_expr_genes_s, self.max_expr_genes_s)
        return {"X": s, "spliced": s, "unspliced": (self.min_expr_genes_u, self.max_expr_genes_u)}

    def mask(self, qc: QCSums) -> np.ndarray:
        """Cells that pass."""
        allowed = ["X", "spliced", "unspliced", "protein"]
        used = (
            allowed
            if self.layer == "all"
            else [self.layer]
            if isinstance(self.layer, str)
            else list(self.layer)
        )
        if not set(used) <= set(allowed):
            raise InputError(f"layer must be 'all' or among {allowed}, got {self.layer!r}")
        keep = np.ones(qc.n_cells, dtype=bool)
        for name, (low, high) in self.ranges().items():
            if name in used and name in qc.names:
                detected = qc.n_genes_of(name)
                keep &= (detected >= low) & (detected <= high)
        if self.shared_count is not None:
            keep &= qc.shared_cells() >= self.shared_count
        if self.max_pmito_s is not None:
            keep &= stats_columns(qc)[0]["pMito"] < self.max_pmito_s
        return keep


@dataclass(frozen=True)
class GeneFilter:
    """Thresholds of the basic gene filter (dynamo's names and defaults)."""

    layer: str = "all"
    min_cell_s: float = 1
    min_cell_u: float = 1
    min_avg_exp_s: float = 1e-10
    min_avg_exp_u: float = 0
    max_avg_exp: float = INF
    min_count_s: float = 0
    min_count_u: float = 0
    shared_count: float | None = 30
    min_cell_p: float = 1  # protein thresholds: accepted, no protein layer is read
    min_avg_exp_p: float = 0
    min_count_p: float = 0

    def _layer_mask(self, qc: QCSums, name: str, min_cell, min_avg, min_count) -> np.ndarray:
        i = qc.names.index(name)
        mean = qc.sums[i] / max(qc.n_kept, 1)
        return (
            (qc.ncells[i] >= min_cell)
            & (mean >= min_avg)
            & (mean <= self.max_avg_exp)
            & (qc.sums[i] >= min_count)
        )

    def mask(self, qc: QCSums) -> np.ndarray:
        """Genes that pass."""
        s = (self.min_cell_s, self.min_avg_exp_s, self.min_count_s)
        keep = self._layer_mask(qc, "X", *s)
        if "spliced" in qc.names and self.layer in ("spliced", "all"):
            keep &= self._layer_mask(qc, "spliced", *s)
        if "unspliced" in qc.names and self.layer in ("unspliced", "all"):
            u = (self.min_cell_u, self.min_avg_exp_u, self.min_count_u)
            keep &= self._layer_mask(qc, "unspliced", *u)
        if self.shared_count is not None and any(n in RAW_LAYERS for n in qc.names):
            shared = qc.shared_genes[0] >= self.shared_count
            if shared.sum() <= 2000:  # short pulses: leave the labelled layer out
                shared = qc.shared_genes[1] >= self.shared_count
            keep &= shared
        return keep


def as_mask(filter_bool, n: int, what: str) -> np.ndarray:
    """A user's keep-mask as booleans of length ``n`` (all True for ``None``)."""
    if filter_bool is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(filter_bool, dtype=bool).ravel()
    if mask.shape != (n,):
        raise InputError(f"filter_bool has {mask.size} values but there are {n} {what}")
    return mask


def basic_stats(adata: ad.AnnData) -> None:
    """Count each cell's detected genes and counts and each gene's cells and counts (of X).

    Uses the spliced (or total) layer when X is absent. One pass over the data.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData with raw counts.

    Writes
    ------
    obs['nGenes'], obs['nCounts'], obs['pMito'], var['nCells'], var['nCounts']
    """
    obs, var = stats_columns(qc_pass(adata))
    Pending(obs=obs, var=var).commit(adata, "basic_stats")


def filter_cells_by_outliers(
    adata: ad.AnnData,
    filter_bool: np.ndarray | None = None,
    layer: str | list[str] = "all",
    *,
    keep_filtered: bool = False,
    min_expr_genes_s: float = 50,
    min_expr_genes_u: float = 25,
    min_expr_genes_p: float = 1,
    max_expr_genes_s: float = INF,
    max_expr_genes_u: float = INF,
    max_expr_genes_p: float = INF,
    max_pmito_s: float | None = None,
    shared_count: float | None = None,
    obs_store_key: str = keys.PASS_BASIC_FILTER,
) -> ad.AnnData:
    """Flag (and, in memory, drop) cells with too few or too many detected genes.

    A cell passes when its number of detected genes in X/spliced lies in
    ``[min_expr_genes_s, max_expr_genes_s]``, in unspliced in ``[min_expr_genes_u,
    max_expr_genes_u]``, its shared counts reach ``shared_count`` and its mitochondrial
    fraction stays under ``max_pmito_s`` (checks skipped when a layer is absent or None).

    Parameters
    ----------
    adata
        AnnData with raw counts (in memory or store-backed).
    filter_bool
        Cells the user keeps (combined with the filter by AND).
    layer
        ``'all'`` or the layers whose detected genes are checked (X, spliced, unspliced).
    keep_filtered
        Keep failing cells (only flagged). A store cannot be subset in place: store-backed
        data are always only flagged.
    min_expr_genes_s, min_expr_genes_u, min_expr_genes_p
        Lower detected-gene bounds (protein bounds accepted for dynamo compatibility).
    max_expr_genes_s, max_expr_genes_u, max_expr_genes_p
        Upper detected-gene bounds.
    max_pmito_s
        Largest mitochondrial fraction.
    shared_count
        Smallest shared count across the raw layers.
    obs_store_key
        The obs column of the flags.

    Returns
    -------
    anndata.AnnData
        ``adata`` (subset in place when cells fail and ``keep_filtered`` is False in memory).

    Writes
    ------
    obs[obs_store_key]
    """
    rule = CellFilter(
        layer,
        min_expr_genes_s,
        min_expr_genes_u,
        min_expr_genes_p,
        max_expr_genes_s,
        max_expr_genes_u,
        max_expr_genes_p,
        max_pmito_s,
        shared_count,
    )
    qc = qc_pass(adata)
    mask = rule.mask(qc) & as_mask(filter_bool, qc.n_cells, "cells")
    Pending(obs={obs_store_key: mask}).commit(adata, "filter_cells")
    subset_cells(adata, mask, keep_filtered=keep_filtered)
    return adata


def filter_genes_by_outliers(
    adata: ad.AnnData,
    filter_bool: np.ndarray | None = None,
    layer: str = "all",
    *,
    min_cell_s: float = 1,
    min_cell_u: float = 1,
    min_cell_p: float = 1,
    min_avg_exp_s: float = 1e-10,
    min_avg_exp_u: float = 0,
    min_avg_exp_p: float = 0,
    max_avg_exp: float = INF,
    min_count_s: float = 0,
    min_count_u: float = 0,
    min_count_p: float = 0,
    shared_count: float | None = 30,
    inplace: bool = False,
) -> ad.AnnData | pd.Series:
    """Flag genes detected in too few cells or with too low expression (dynamo's basic filter).

    Per layer (X and spliced with the ``_s`` thresholds, unspliced with ``_u``): cells
    expressing the gene, mean and total counts must reach the minima; the mean must stay
    under ``max_avg_exp``; the gene's shared counts across raw layers must reach
    ``shared_count``. With ``inplace`` the failing genes are dropped from an in-memory
    AnnData; a store's genes are only flagged (with a warning), as its cells are by the cell
    filter.

    Parameters
    ----------
    adata
        AnnData with raw counts (in memory or store-backed).
    filter_bool
        Genes the user keeps (combined by AND).
    layer
        ``'all'``, ``'spliced'`` or ``'unspliced'``: the layers checked besides X.
    min_cell_s, min_cell_u, min_cell_p, min_avg_exp_s, min_avg_exp_u, min_avg_exp_p
        Minimum cells and mean expression (protein values accepted, unused).
    max_avg_exp
        Largest mean expression.
    min_count_s, min_count_u, min_count_p
        Minimum total counts.
    shared_count
        Minimum shared counts (``None`` skips the check).
    inplace
        Drop the failing genes (in memory; a store keeps them, flagged).

    Returns
    -------
    anndata.AnnData or pandas.Series
        ``adata`` with ``inplace``; else the flags, ``var['pass_basic_filter']``.

    Writes
    ------
    var['pass_basic_filter']
    """
    rule = GeneFilter(
        layer,
        min_cell_s,
        min_cell_u,
        min_avg_exp_s,
        min_avg_exp_u,
        max_avg_exp,
        min_count_s,
        min_count_u,
        shared_count,
    )
    qc = qc_pass(adata, fit_cells(adata))
    mask = rule.mask(qc) & as_mask(filter_bool, adata.n_vars, "genes")
    Pending(var={keys.PASS_BASIC_FILTER: mask}).commit(adata, "filter_genes")
    if not inplace:
        return adata.var[keys.PASS_BASIC_FILTER]
    subset_in_place(adata, mask, "var")
    return adata


filter_cells = filter_cells_by_outliers
filter_genes = filter_genes_by_outliers


def filter_genes_by_pattern(
    adata: ad.AnnData,
    patterns: tuple[str, ...] = ("MT-", "RPS", "RPL", "MRPS", "MRPL", "ERCC-"),
    drop_genes: bool = False,
) -> list[bool] | None:
    """Find genes whose names start with one of ``patterns`` (mitochondrial, ribosomal, spike-ins).

    Parameters
    ----------
    adata
        The AnnData.
    patterns
        Name prefixes (case-sensitive, as gene symbols are written).
    drop_genes
        Drop the matched genes from an in-memory AnnData. A store's genes cannot be dropped
        in place: it is left as it is, with a warning, and the flags are returned.

    Returns
    -------
    list of bool or None
        One flag per gene (``True``: matched); ``None`` when the genes were dropped.
    """
    matched = [bool(m) for m in adata.var_names.str.startswith(tuple(patterns))]
    if not drop_genes or not any(matched):
        return matched
    if store_path(adata) is not None:
        warnings.warn(
            f"{sum(matched)} genes match {tuple(patterns)}; a store is not subset in place, so "
            "they stay: use the returned flags",
            stacklevel=2,
        )
        return matched
    adata._inplace_subset_var(~np.asarray(matched))
    return None


def filter_genes_by_clusters(
    adata: ad.AnnData,
    cluster: str,
    min_avg_U: float = 0.02,  # noqa: N803 - dynamo's name
    *,
    min_avg_S: float = 0.08,  # noqa: N803 - dynamo's name
    size_limit: int = 40,
) -> np.ndarray:
    """Genes whose mean unspliced and spliced counts pass thresholds in some cluster.

    A gene is kept when its largest cluster mean of ``unspliced`` exceeds ``min_avg_U`` and
    its largest cluster mean of ``spliced`` exceeds ``min_avg_S`` (velocyto's rule, as in
    dynamo). A cluster with at most ``size_limit`` cells counts with the mean over all cells.
    The per-cluster sums are one pass over the row blocks.

    Parameters
    ----------
    adata
        AnnData with raw ``spliced`` and ``unspliced`` layers (in memory or store-backed).
    cluster
        The obs column of cluster labels.
    min_avg_U, min_avg_S
        The thresholds on the largest cluster mean.
    size_limit
        Clusters this small or smaller use the mean over all cells.

    Returns
    -------
    numpy.ndarray
        One flag per gene (nothing is written).
    """
    missing = [n for n in (keys.UNSPLICED, keys.SPLICED) if n not in adata.layers]
    if missing:
        raise MissingKeyError(
            f"layer(s) {missing} not in adata.layers: filter_genes_by_clusters needs the raw "
            f"spliced and unspliced counts (present: {sorted(adata.layers)})"
        )
    if cluster not in adata.obs:
        raise MissingKeyError(f"obs[{cluster!r}] not found: name a column of cluster labels")
    codes, groups = pd.factorize(adata.obs[cluster], sort=True)
    if (codes < 0).any():
        raise InputError(f"obs[{cluster!r}] has missing labels: fill or drop those cells first")
    u, s = compute(
        *(
            gmarkers.group_counts(adata.layers[n], codes, len(groups))
            for n in ("unspliced", "spliced")
        ),
        desc="cluster means",
    )
    means = []
    for stats in (u, s):
        cells = stats["cells"][:, None]
        overall = stats["sum"].sum(0) / cells.sum()
        means.append(np.where(cells > size_limit, stats["sum"] / np.maximum(cells, 1), overall))
    return (means[0].max(0) > min_avg_U) & (means[1].max(0) > min_avg_S)
