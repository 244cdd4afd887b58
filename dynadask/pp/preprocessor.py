"""dynamo's ``Preprocessor`` and ``recipe_monocle``, out of core, committed as one stage.

The monocle recipe reads the data three times: QC counts (one pass over every raw layer),
per-gene moments of X together with the PCA cross-product, then the final commit, which
writes the normalised layers and the PCA scores block by block.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, OptionError
from .._core.validate import sample_counts, unique_names
from ..graph import pca as gpca
from ..graph.preprocess import normalized_stats
from ._inputs import experiment_info, fit_cells, raw_layers, subset_cells
from ._pending import Pending
from .cell_cycle import cell_cycle_results
from .gene_selection import (
    check_sort_by,
    gini_columns,
    select_from_moments,
    transformed_X,
    x_view,
)
from .normalization import normalized_layers, size_factor_columns
from .pca import finish_pca
from .qc import CellFilter, GeneFilter, QCSums, as_mask, qc_pass, stats_columns
from .recipes import (
    monocle_pearson_residuals_recipe,
    pearson_residuals_recipe,
    regress_out_pending,
)
from .sctransform import sctransform_recipe
from .seurat import select_from_moments_seurat

MAX_FUSED_GRAM_GENES = 3000  # cross-product accumulated with the gene moments up to this size
STAGE = "preprocess"


def new_to_total(qc: QCSums) -> tuple[np.ndarray, np.ndarray] | None:
    """Return dynamo's ntr per cell and per gene: labelled (or unspliced) share of the total."""
    names = set(qc.names)
    if {"new", "total"} <= names:
        new, total = ["new"], ["total"]
    elif set(keys.LABELLING_LAYERS) <= names:
        new, total = ["ul", "sl"], list(keys.LABELLING_LAYERS)
    elif {"spliced", "unspliced"} <= names:
        new, total = ["unspliced"], ["unspliced", "spliced"]
    else:
        return None

    def ratio(part: list[str], whole: list[str], cells: bool) -> np.ndarray:
        pick = qc.total_of if cells else (lambda n: qc.sums[qc.names.index(n)])
        with np.errstate(divide="ignore", invalid="ignore"):
            return sum(pick(n) for n in part) / sum(pick(n) for n in whole)

    return ratio(new, total, True), ratio(new, total, False)


class Preprocessor:
    """dynamo's preprocessing pipeline (``recipe='monocle'``) over row blocks.

    Parameters
    ----------
    filter_cells_by_outliers_kwargs, filter_genes_by_outliers_kwargs
        Thresholds of the basic filters (see :func:`filter_cells_by_outliers`).
    size_factor_kwargs
        ``method``, ``scale_to``, ``locfunc`` of the size factors.
    select_genes_kwargs
        Options of :func:`select_genes_monocle` (``n_top_genes``, …).
    pca_kwargs
        ``n_pca_components``, ``pca_key``, ``pcs_key``.
    gene_append_list, gene_exclude_list, force_gene_list
        Genes added to / removed from the feature genes, or used instead of them.
    keep_filtered_cells
        Keep cells failing the filter (only flagged); stores always keep them.
    size_factor_per_layer
        Normalise every layer by its own size factor, as dynamo 1.5.3 does, also in
        labelling data (for parity checks only). Default ``False``: in labelling data every
        part of the total RNA is divided by the cell's total-RNA size factor, which keeps
        the new / total ratios the labelling rates are fitted on (see
        :func:`~dynadask.pp.normalize`).
    regress_out_kwargs
        ``obs_keys`` (obs columns whose linear effect is removed from X after log1p, before
        the PCA), ``layer``, ``gene_selection_key`` (see
        :func:`~dynadask.pp.recipes.regress_out_pending`).
    cell_cycle_score_enable, cell_cycle_score_kwargs
        Score the cell-cycle phases after the monocle recipe (:func:`cell_cycle_scores`
        with these options); a failure is reported as a warning, as in dynamo.
    filter_cells_by_highly_variable_genes_kwargs, normalize_selected_genes_kwargs
        Options of the Pearson-residual recipes' cell filter (``keep_filtered``) and of
        :func:`normalize_layers_pearson_residuals` (``layers``, ``theta``, ``clip``).
    sctransform_kwargs
        Options of the sctransform recipe's :func:`sctransform` (``n_top_genes``,
        ``n_cells``, ``min_cells``, ``bw_adjust``, ``seed``, …).
    **ignored
        dynamo's function-valued options (custom step functions) are not supported and
        are ignored with a warning.
    """

    def __init__(
        self,
        *,
        filter_cells_by_outliers_kwargs: dict | None = None,
        filter_genes_by_outliers_kwargs: dict | None = None,
        size_factor_kwargs: dict | None = None,
        select_genes_kwargs: dict | None = None,
        pca_kwargs: dict | None = None,
        gene_append_list: list[str] | None = None,
        gene_exclude_list: list[str] | None = None,
        force_gene_list: list[str] | None = None,
        keep_filtered_cells: bool = False,
        size_factor_per_layer: bool = False,
        regress_out_kwargs: dict | None = None,
        cell_cycle_score_enable: bool = False,
        cell_cycle_score_kwargs: dict | None = None,
        filter_cells_by_highly_variable_genes_kwargs: dict | None = None,
        normalize_selected_genes_kwargs: dict | None = None,
        sctransform_kwargs: dict | None = None,
        **ignored: Any,
    ) -> None:
        if ignored:
            warnings.warn(f"Preprocessor options {sorted(ignored)} are ignored", stacklevel=2)
        cells_given = dict(filter_cells_by_outliers_kwargs or {})
        keep_filtered_cells = cells_given.pop("keep_filtered", keep_filtered_cells)
        self._given = {
            "filter_cells_by_outliers_kwargs": cells_given,
            "filter_genes_by_outliers_kwargs": dict(filter_genes_by_outliers_kwargs or {}),
            "select_genes_kwargs": dict(select_genes_kwargs or {}),
            "pca_kwargs": dict(pca_kwargs or {}),
            "filter_cells_by_highly_variable_genes_kwargs": dict(
                filter_cells_by_highly_variable_genes_kwargs or {}
            ),
            "normalize_selected_genes_kwargs": dict(normalize_selected_genes_kwargs or {}),
            "sctransform_kwargs": dict(sctransform_kwargs or {}),
        }
        self.filter_cells_by_outliers_kwargs = dict(cells_given)
        self.filter_genes_by_outliers_kwargs = dict(filter_genes_by_outliers_kwargs or {})
        self.size_factor_kwargs = dict(size_factor_kwargs or {})
        self.select_genes_kwargs = dict(select_genes_kwargs or {})
        self.pca_kwargs = dict(pca_kwargs or {})
        self.regress_out_kwargs = {"obs_keys": [], **dict(regress_out_kwargs or {})}
        self.cell_cycle_score_enable = bool(cell_cycle_score_enable)
        self.cell_cycle_score_kwargs = dict(cell_cycle_score_kwargs or {})
        self.filter_cells_by_highly_variable_genes_kwargs = dict(
            filter_cells_by_highly_variable_genes_kwargs or {}
        )
        self.normalize_selected_genes_kwargs = dict(normalize_selected_genes_kwargs or {})
        self.sctransform_kwargs = dict(sctransform_kwargs or {})
        self.gene_append_list = list(gene_append_list or [])
        self.gene_exclude_list = list(gene_exclude_list or [])
        self.force_gene_list = force_gene_list
        self.size_factor_per_layer = bool(size_factor_per_layer)
        self.keep_filtered_cells = bool(keep_filtered_cells)

    def config_monocle_recipe(self, adata: ad.AnnData, n_top_genes: int = 2000) -> None:
        """Set dynamo's monocle thresholds for this data size (user-given options win)."""
        n_cells, n_genes = adata.n_obs, adata.n_vars
        cells = {
            "layer": "all",
            "min_expr_genes_s": min(50, 0.01 * n_genes),
            "min_expr_genes_u": min(25, 0.01 * n_genes),
            "min_expr_genes_p": min(2, 0.01 * n_genes),
            "shared_count": None,
        }
        genes = {
            "layer": "all",
            "min_cell_s": max(5, 0.01 * n_cells),
            "min_cell_u": max(5, 0.005 * n_cells),
            "min_avg_exp_s": 0,
            "min_avg_exp_u": 0,
            "min_count_s": 0,
            "min_count_u": 0,
            "shared_count": 30,
        }
        given = self._given
        self.filter_cells_by_outliers_kwargs = {**cells, **given["filter_cells_by_outliers_kwargs"]}
        self.filter_genes_by_outliers_kwargs = {**genes, **given["filter_genes_by_outliers_kwargs"]}
        self.select_genes_kwargs = {"n_top_genes": n_top_genes, **given["select_genes_kwargs"]}
        self.pca_kwargs = {"pca_key": "X_pca", **given["pca_kwargs"]}

    def config_seurat_recipe(self, adata: ad.AnnData) -> None:
        """Set dynamo's seurat options (user-given options win).

        The monocle cell filter, a gene filter with ``shared_count=20``, 2,000 feature genes
        by seurat dispersion.
        """
        self.config_monocle_recipe(adata)
        given = self._given
        self.filter_genes_by_outliers_kwargs = {
            "shared_count": 20,
            **given["filter_genes_by_outliers_kwargs"],
        }
        self.select_genes_kwargs = {
            "algorithm": "seurat_dispersion",
            "n_top_genes": 2000,
            **given["select_genes_kwargs"],
        }

    def config_pearson_residuals_recipe(self, adata: ad.AnnData) -> None:
        """Set dynamo's Pearson-residual options (user-given options win).

        No basic filters, 2,000 genes by residual variance, residuals in X, 50 components.
        """
        given = self._given
        self.filter_cells_by_outliers_kwargs = dict(given["filter_cells_by_outliers_kwargs"])
        self.filter_genes_by_outliers_kwargs = dict(given["filter_genes_by_outliers_kwargs"])
        self.select_genes_kwargs = {"n_top_genes": 2000, **given["select_genes_kwargs"]}
        self.filter_cells_by_highly_variable_genes_kwargs = {
            "keep_filtered": False,
            **given["filter_cells_by_highly_variable_genes_kwargs"],
        }
        self.normalize_selected_genes_kwargs = {
            "layers": "X",
            **given["normalize_selected_genes_kwargs"],
        }
        self.pca_kwargs = {"pca_key": "X_pca", "n_pca_components": 50, **given["pca_kwargs"]}

    def config_monocle_pearson_residuals_recipe(self, adata: ad.AnnData) -> None:
        """Set dynamo's monocle + Pearson-residual options (user-given options win).

        The monocle filters and size factors, 2,000 genes by residual variance, residuals in
        X only, 50 components.
        """
        self.config_monocle_recipe(adata)
        given = self._given
        self.select_genes_kwargs = {"n_top_genes": 2000, **given["select_genes_kwargs"]}
        self.filter_cells_by_highly_variable_genes_kwargs = {
            "keep_filtered": False,
            **given["filter_cells_by_highly_variable_genes_kwargs"],
        }
        self.normalize_selected_genes_kwargs = {
            "layers": ["X"],
            **given["normalize_selected_genes_kwargs"],
        }
        self.pca_kwargs = {"pca_key": "X_pca", "n_pca_components": 50, **given["pca_kwargs"]}

    def config_sctransform_recipe(self, adata: ad.AnnData) -> None:
        """Set dynamo's sctransform options (user-given options win).

        The cell filter at its defaults, the gene filter ``min_cell_s = min_cell_u = 5``,
        ``min_count_s = min_count_u = 1``, 3,000 monocle genes for sctransform to model,
        2,000 genes fitted and chosen by sctransform, 50 components.
        """
        given = self._given
        self.filter_cells_by_outliers_kwargs = dict(given["filter_cells_by_outliers_kwargs"])
        self.filter_genes_by_outliers_kwargs = {
            "min_cell_s": 5,
            "min_count_s": 1,
            "min_cell_u": 5,
            "min_count_u": 1,
            **given["filter_genes_by_outliers_kwargs"],
        }
        self.select_genes_kwargs = {"n_top_genes": 3000, **given["select_genes_kwargs"]}
        self.sctransform_kwargs = {"n_top_genes": 2000, **given["sctransform_kwargs"]}
        self.pca_kwargs = {"pca_key": "X_pca", "n_pca_components": 50, **given["pca_kwargs"]}

    def preprocess_adata(
        self,
        adata: ad.AnnData,
        recipe: str = "monocle",
        tkey: str | None = None,
        experiment_type: str | None = None,
    ) -> None:
        """Run a preprocessing recipe on ``adata`` (in memory or store-backed).

        Parameters
        ----------
        adata
            AnnData with raw counts in X and/or the spliced, unspliced, new, total, uu, ul,
            su, sl layers (X absent: the spliced or total layer stands for it).
        recipe
            ``'monocle'``, ``'seurat'``, ``'sctransform'``, ``'pearson_residuals'`` or
            ``'monocle_pearson_residuals'``.
        tkey
            obs column of the labelling time (labelling data).
        experiment_type
            ``'conventional'``, ``'one-shot'``, ``'kin'``, ``'deg'``, … (default: inferred).

        Writes
        ------
        See :func:`recipe_monocle` and the ``preprocess_adata_<recipe>`` methods.
        """
        if recipe not in RECIPES:
            raise InputError(f"recipe {recipe!r} is not available: use one of {sorted(RECIPES)}")
        if adata.n_obs == 0 or adata.n_vars == 0:
            raise InputError(
                f"this AnnData has {adata.n_obs} cells and {adata.n_vars} genes: "
                "preprocessing needs both (check how it was subset or loaded)"
            )
        unique_names(adata)
        done = adata.uns.get("pp", {})
        if done.get("X_normalized") or done.get("X_norm_method") or "sctransform" in done:
            raise InputError(
                "X already holds normalised values (uns['pp'] records X_normalized="
                f"{done.get('X_normalized')}, X_norm_method={done.get('X_norm_method')!r}"
                f"{', sctransform' if 'sctransform' in done else ''}): "
                "the recipe starts from raw counts; run it on the raw data (read it again)"
            )
        for name, x in raw_layers(adata, "all").items():  # one row block each
            sample_counts(x, "X" if name == "X" else f"layer {name!r}")
        RECIPES[recipe](self, adata, tkey, experiment_type)

    def preprocess_adata_monocle(
        self, adata: ad.AnnData, tkey: str | None = None, experiment_type: str | None = None
    ) -> None:
        """The monocle recipe (see :func:`recipe_monocle`); one commit, stage 'preprocess'.

        With ``regress_out_kwargs['obs_keys']`` the obs columns' linear effect is removed
        from X after log1p (X then holds dense residuals); with ``cell_cycle_score_enable``
        the cell-cycle keys of :func:`cell_cycle_scores` are added.
        """
        self._size_factor_recipe(adata, tkey, experiment_type, selector="monocle")

    def preprocess_adata_seurat(
        self, adata: ad.AnnData, tkey: str | None = None, experiment_type: str | None = None
    ) -> None:
        """Dynamo's seurat recipe, one commit (stage 'preprocess').

        The monocle steps with Seurat's feature genes: basic filters, size factors,
        normalised layers, then on ``X / Size_Factor`` (not logged) each gene's mean and
        sample variance in one pass, the binned z-scored log dispersion
        (:func:`~dynadask.kernels.preprocess_genes.seurat_dispersion_norm`) and the top
        ``n_top_genes``; log1p; optional ``regress_out``; exact PCA. No ntr and no
        cell-cycle scores (dynamo's seurat recipe computes neither).

        Writes
        ------
        As :func:`recipe_monocle` without ntr, the SVR columns and ``feature_selection``;
        plus var ``pp_gene_mean``, ``pp_gene_variance`` (the bin's mean and variance of the
        log dispersion, as dynamo writes them), ``gene_highly_variable``.
        """
        self._size_factor_recipe(
            adata, tkey, experiment_type, selector="seurat", ntr=False, cell_cycle=False
        )

    def preprocess_adata_seurat_wo_pca(
        self, adata: ad.AnnData, tkey: str | None = None, experiment_type: str | None = None
    ) -> None:
        """The seurat recipe up to log1p: no gene-list edits, no regression, no PCA."""
        self._size_factor_recipe(
            adata,
            tkey,
            experiment_type,
            selector="seurat",
            ntr=False,
            cell_cycle=False,
            pca=False,
            edit_genes=False,
            regress=False,
        )

    def preprocess_adata_sctransform(
        self, adata: ad.AnnData, tkey: str | None = None, experiment_type: str | None = None
    ) -> None:
        """Dynamo's sctransform recipe (Hafemeister & Satija 2019), one commit.

        Basic filters (failing cells dropped in memory, flagged in a store); size factors
        over the genes that pass; the monocle feature genes (all passing genes when there
        are at most ``select_genes_kwargs['n_top_genes']``, 3,000) are the genes sctransform
        models: dynamo subsets the AnnData to them, dynadask keeps every gene and leaves the
        others' X columns as counts; :func:`sctransform` on X, whose residual variance
        chooses 2,000 feature genes when there are more; normalised layers ``X_<layer>``
        (``layer / <layer>_Size_Factor``, not logged); optional ``regress_out``; exact PCA
        (50) of the residual X on the feature genes.

        Writes
        ------
        obs: nGenes, nCounts, pMito, pass_basic_filter, Size_Factor, initial_cell_size,
        <layer>_Size_Factor, initial_<layer>_cell_size, the obs columns of
        :func:`sctransform`; var: nCells, nCounts, pass_basic_filter, use_for_pca and the
        var columns of :func:`sctransform`; X: residuals on the modelled genes (CSR);
        layers: X_<layer>; obsm: X_pca; uns: pp (with ``sctransform``), PCs, pca_mean,
        explained_variance_ratio_
        """
        sctransform_recipe(self, adata, tkey, experiment_type)

    def preprocess_adata_pearson_residuals(
        self, adata: ad.AnnData, tkey: str | None = None, experiment_type: str | None = None
    ) -> None:
        """Dynamo's Pearson-residual recipe (Lause, Berens & Kobak 2021), one commit.

        QC statistics (no basic filters unless given); feature genes by residual variance
        (:func:`select_genes_by_pearson_residuals`); cells without counts in them dropped
        (flagged on a store); the feature genes' columns of X replaced by their Pearson
        residuals (:func:`normalize_layers_pearson_residuals`), the other columns left as
        counts; optional ``regress_out``; exact PCA of X on the feature genes.

        Writes
        ------
        obs: nGenes, nCounts, pMito, pass_basic_filter; var: nCells, nCounts, means,
        variances, residual_variances, highly_variable_rank, gene_highly_variable,
        use_for_pca; X; obsm X_pca; uns: pp (with ``hvg`` and
        ``X_pearson_residuals_normalization_params``), PCs, pca_mean,
        explained_variance_ratio_
        """
        pearson_residuals_recipe(self, adata, tkey, experiment_type)

    def preprocess_adata_monocle_pearson_residuals(
        self, adata: ad.AnnData, tkey: str | None = None, experiment_type: str | None = None
    ) -> None:
        """Dynamo's monocle + Pearson-residual recipe, one commit.

        The monocle filters, size factors and normalised layers ``X_<layer>`` (for the
        velocity steps); feature genes by Pearson residual variance of the raw X; X keeps
        its counts except the feature genes' columns, which hold their Pearson residuals;
        optional ``regress_out``; exact PCA of X on the feature genes.

        Writes
        ------
        As :meth:`preprocess_adata_pearson_residuals`, plus the size-factor columns and the
        ``X_<layer>`` layers of the monocle recipe
        """
        monocle_pearson_residuals_recipe(self, adata, tkey, experiment_type)

    def _size_factor_recipe(
        self,
        adata: ad.AnnData,
        tkey: str | None,
        experiment_type: str | None,
        *,
        selector: str,
        ntr: bool = True,
        cell_cycle: bool = True,
        pca: bool = True,
        edit_genes: bool = True,
        regress: bool = True,
    ) -> None:
        """Run the size-factor recipes' steps and commit once.

        Filters, size factors, normalised layers, feature genes, log1p, (regression), PCA,
        ntr and cell-cycle scores.
        """
        pending = self._start(adata, tkey, experiment_type)
        qc = self._filter(adata, pending)
        names = pending.uns["pp"]["experiment_layers"]
        pending.obs.update(
            size_factor_columns(
                qc, names, pending.uns["pp"]["experiment_total_layers"], **self.size_factor_kwargs
            )
        )
        normalized_layers(adata, pending, names, size_factor_per_layer=self.size_factor_per_layer)
        moments = self._select_genes(adata, pending, selector=selector, edit=edit_genes)
        pending.uns["pp"]["X_norm_method"] = "log1p"
        source = None
        if regress and self.regress_out_kwargs.get("obs_keys"):
            source = regress_out_pending(adata, pending, self.regress_out_kwargs, self._fit_cells)
            moments = None
        if pca:
            self._pca(adata, pending, moments, source)
        if pending.X is None:
            pending.X = transformed_X(adata, pending)
        ratios = new_to_total(qc) if ntr else None
        if ratios is not None:
            pending.obs["ntr"], pending.var["ntr"] = ratios
        if cell_cycle:
            self._cell_cycle(adata, pending)
        pending.commit(adata, STAGE)

    def _start(self, adata: ad.AnnData, tkey: str | None, experiment_type: str | None) -> Pending:
        return Pending(
            uns={
                "pp": {
                    "X_norm_method": None,
                    "layers_norm_method": None,
                    **experiment_info(adata, tkey, experiment_type),
                }
            }
        )

    def _cell_cycle(self, adata: ad.AnnData, pending: Pending) -> None:
        """Dynamo's optional cell-cycle step: its failure is a warning, not an error."""
        if not self.cell_cycle_score_enable:
            return
        options = {k: v for k, v in self.cell_cycle_score_kwargs.items() if k not in ("copy",)}
        try:
            found = cell_cycle_results(adata, pending, **options)
        except (InputError, KeyError, ValueError) as err:
            warnings.warn(
                f"cell-cycle scores were not computed ({err}); color phase plots by another key",
                stacklevel=3,
            )
            return
        for slot in ("obs", "obsm", "uns"):
            getattr(pending, slot).update(getattr(found, slot))

    def _fit_cells(self, adata: ad.AnnData, pending: Pending) -> np.ndarray | None:
        return fit_cells(adata, pending, keep_filtered=self.keep_filtered_cells)

    def _filter(self, adata: ad.AnnData, pending: Pending) -> QCSums:
        qc = qc_pass(adata)
        obs, var = stats_columns(qc)
        rule = dict(self.filter_cells_by_outliers_kwargs)
        chosen = as_mask(rule.pop("filter_bool", None), qc.n_cells, "cells")
        mask = CellFilter(**rule).mask(qc) & chosen
        obs[keys.PASS_BASIC_FILTER] = mask
        if subset_cells(adata, mask, keep_filtered=self.keep_filtered_cells):
            obs = {k: np.asarray(v)[mask] for k, v in obs.items()}
            qc = qc_pass(adata)
        pending.obs.update(obs)
        pending.var.update(var)
        kept = self._fit_cells(adata, pending)
        if kept is not None:  # a store keeps failing cells: sum genes over passing ones
            qc = qc_pass(adata, kept)
        rule = dict(self.filter_genes_by_outliers_kwargs)
        chosen = as_mask(rule.pop("filter_bool", None), adata.n_vars, "genes")
        rule.pop("inplace", None)
        genes = GeneFilter(**rule).mask(qc) & chosen
        if not genes.any():
            raise InputError("no gene passes the gene filter: relax its thresholds (min_cell_*)")
        pending.var[keys.PASS_BASIC_FILTER] = genes
        return qc

    def _select_genes(
        self, adata: ad.AnnData, pending: Pending, *, selector: str = "monocle", edit: bool = True
    ) -> dict | None:
        """Gene moments of X (and, when small enough, the PCA cross-product) in one pass."""
        n_top = self.select_genes_kwargs.get("n_top_genes", 2000) or adata.n_vars
        passed = pending.var[keys.PASS_BASIC_FILTER]
        cover = np.arange(adata.n_vars) if adata.n_vars <= n_top else np.flatnonzero(passed)
        fused = cover.size <= MAX_FUSED_GRAM_GENES
        sort_by = self.select_genes_kwargs.get("sort_by", "cv_dispersion")
        check_sort_by(sort_by)
        if selector == "monocle" and sort_by == "gini" and adata.n_vars > n_top:
            pending.var.update(gini_columns(adata, pending))
        x, sf, _ = x_view(adata, pending)
        kept = self._fit_cells(adata, pending)
        stats = normalized_stats(x, sf, gram_genes=cover if fused else None, cells=kept)
        (stats,) = compute(stats, desc="gene moments")
        kwargs = {
            k: v for k, v in self.select_genes_kwargs.items() if k not in ("layer", "keep_filtered")
        }
        if selector == "seurat":
            chosen = select_from_moments_seurat(adata, pending, stats, **kwargs)
        else:
            chosen = select_from_moments(adata, pending, stats, **kwargs)
        if edit:
            self._edit_gene_list(adata, pending, chosen)
        if not fused:
            return None
        return {"n": stats["n"], "sum": stats["lsum"], "gram": stats["gram"], "genes": cover}

    def _edit_gene_list(self, adata: ad.AnnData, pending: Pending, chosen: np.ndarray) -> None:
        names = adata.var_names
        chosen = chosen | np.asarray(names.isin(self.gene_append_list))
        chosen &= ~np.asarray(names.isin(self.gene_exclude_list))
        if self.force_gene_list is not None:
            chosen = np.asarray(names.isin(self.force_gene_list))
        pending.var[keys.USE_FOR_PCA] = chosen

    def _pca(
        self, adata: ad.AnnData, pending: Pending, moments: dict | None, source: Any = None
    ) -> None:
        """Exact PCA on the ``use_for_pca`` genes of X as the stage leaves it.

        ``source`` is a lazy matrix that replaces X, read as it is.
        """
        if source is None:
            source = x_view(adata, pending)
        else:
            source = (source, np.ones(adata.n_obs), False)
        use = pending.var[keys.USE_FOR_PCA]
        if moments is None or not set(np.flatnonzero(use)) <= set(moments["genes"]):
            genes = np.flatnonzero(use)
            lazy = gpca.cross_moments(
                source[0], source[1], genes, log=source[2], cells=self._fit_cells(adata, pending)
            )
            (moments,) = compute(lazy, desc="PCA moments")
            moments["genes"] = genes
        finish_pca(
            adata,
            pending,
            moments,
            source,
            **{k: v for k, v in self.pca_kwargs.items() if k in _PCA_OPTIONS},
        )


_PCA_OPTIONS = ("n_pca_components", "pca_key", "pcs_key")


def _run_monocle(pre: Preprocessor, adata: ad.AnnData, tkey, experiment_type) -> None:
    pre.config_monocle_recipe(adata, pre.select_genes_kwargs.get("n_top_genes", 2000))
    pre.preprocess_adata_monocle(adata, tkey=tkey, experiment_type=experiment_type)


def _run_seurat(pre: Preprocessor, adata: ad.AnnData, tkey, experiment_type) -> None:
    pre.config_seurat_recipe(adata)
    pre.preprocess_adata_seurat(adata, tkey=tkey, experiment_type=experiment_type)


def _run_sctransform(pre: Preprocessor, adata: ad.AnnData, tkey, experiment_type) -> None:
    pre.config_sctransform_recipe(adata)
    pre.preprocess_adata_sctransform(adata, tkey=tkey, experiment_type=experiment_type)


def _run_pearson(pre: Preprocessor, adata: ad.AnnData, tkey, experiment_type) -> None:
    pre.config_pearson_residuals_recipe(adata)
    pre.preprocess_adata_pearson_residuals(adata, tkey=tkey, experiment_type=experiment_type)


def _run_monocle_pearson(pre: Preprocessor, adata: ad.AnnData, tkey, experiment_type) -> None:
    pre.config_monocle_pearson_residuals_recipe(adata)
    pre.preprocess_adata_monocle_pearson_residuals(
        adata, tkey=tkey, experiment_type=experiment_type
    )


RECIPES: dict[str, Callable[..., None]] = {
    "monocle": _run_monocle,
    "seurat": _run_seurat,
    "sctransform": _run_sctransform,
    "pearson_residuals": _run_pearson,
    "monocle_pearson_residuals": _run_monocle_pearson,
}


_LEGACY_DEFAULTS: dict[str, Any] = {
    "t_label_keys": None,
    "normalized": None,
    "layer": None,
    "total_layers": None,
    "splicing_total_layers": False,
    "X_total_layers": False,
    "genes_use_for_norm": None,
    "method": "pca",
    "norm_method": None,
    "pseudo_expr": 1,
    "feature_selection": "SVR",
    "maintain_n_top_genes": True,
    "relative_expr": True,
    "keep_filtered_genes": None,
    "keep_raw_layers": None,
    "scopes": None,
    "sg_kwargs": None,
    "feature_selection_layer": "X",
}


def _check_legacy_options(options: dict[str, Any]) -> None:
    """Accept dynamo's legacy ``recipe_monocle`` options; warn about non-default values.

    Raises
    ------
    TypeError
        For a name that is not one of dynamo's options.
    """
    unknown = sorted(set(options) - set(_LEGACY_DEFAULTS))
    if unknown:
        raise OptionError(f"recipe_monocle got unexpected keyword argument(s) {unknown}")
    changed = sorted(k for k, v in options.items() if v is not None and v != _LEGACY_DEFAULTS[k])
    changed = [k for k in changed if not (k.startswith("keep_") and options[k] is True)]
    if changed:
        warnings.warn(
            f"recipe_monocle options {changed} are ignored: dynadask runs the monocle recipe "
            "(SVR feature genes, size-factor normalisation, log1p, PCA) on X and every raw layer",
            stacklevel=3,
        )


def recipe_monocle(
    adata: ad.AnnData,
    reset_X: bool = False,  # noqa: N803 - dynamo's name
    tkey: str | None = None,
    *,
    experiment_type: str | None = None,
    genes_to_use: list[str] | None = None,
    genes_to_append: list[str] | None = None,
    genes_to_exclude: list[str] | None = None,
    n_top_genes: int = 2000,
    num_dim: int = 30,
    sz_method: str = "median",
    scale_to: float | None = None,
    keep_filtered_cells: bool | None = None,
    size_factor_per_layer: bool = False,
    fc_kwargs: dict | None = None,
    fg_kwargs: dict | None = None,
    exprs_frac_for_gene_exclusion: float = 1,
    copy: bool = False,
    **legacy: Any,
) -> ad.AnnData | None:
    """Run dynamo's monocle preprocessing recipe, out of core (one stage, 'preprocess').

    QC statistics; basic cell filter (failing cells dropped in memory, flagged in a store)
    and gene filter; per-layer size factors (cell total / median total) for X and every raw
    layer, and the total-RNA size factor for labelling data; normalised layers
    ``X_<layer>`` (sparse); monocle feature genes (all genes when there are at most
    ``n_top_genes``, else dispersion-versus-mean SVR); log1p; exact PCA.

    Which factor divides which layer: conventional data (spliced / unspliced only) divide
    each layer by its own size factor, as dynamo does. Labelling data divide every part of
    the total RNA (``new, total, uu, ul, su, sl``, and ``spliced`` / ``unspliced`` when
    present) by the cell's total-RNA size factor ``obs['total_Size_Factor']``: one factor
    per cell keeps new / total as it was in the counts, so ``dyn.tl.dynamics`` gets the
    labelling rates in absolute units. The new RNA's own size factor grows with the
    labelling time, and dividing by it removes that trend (dynamo 1.5.3 does so, and its
    gamma on kin data comes out many times too large). ``size_factor_per_layer=True``
    restores dynamo's rule for parity checks.

    Parameters
    ----------
    adata
        AnnData with raw counts (in memory or opened with ``dyn.io.open``).
    reset_X
        Accepted for dynamo compatibility (X always stays raw counts).
    tkey
        obs column of the labelling time (labelling data).
    experiment_type
        Experiment type (inferred when ``None``).
    genes_to_use, genes_to_append, genes_to_exclude
        Force, add or remove feature genes.
    n_top_genes
        Number of feature genes.
    num_dim
        Number of principal components.
    sz_method, scale_to
        Size-factor location (``'median'``, ``'mean'``, ``'mean-geometric-mean-total'``).
    keep_filtered_cells
        Keep failing cells (flagged only).
    size_factor_per_layer
        Divide every layer by its own size factor also in labelling data (dynamo 1.5.3's
        rule; for parity checks, not for estimating labelling rates). Default ``False``.
    fc_kwargs, fg_kwargs
        Extra thresholds of the cell and gene filters.
    exprs_frac_for_gene_exclusion
        Genes holding more than this fraction of all counts are not feature genes.
    copy
        Work on a copy and return it (in-memory AnnData).
    **legacy
        dynamo's other legacy options (``method``, ``feature_selection``, ``total_layers``,
        ``keep_filtered_genes``, …): accepted; a value other than dynamo's default is
        ignored with a warning (genes are always flagged, never dropped; raw layers stay).

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy``.

    Writes
    ------
    obs: nGenes, nCounts, pMito, pass_basic_filter, Size_Factor, initial_cell_size,
    <layer>_Size_Factor, initial_<layer>_cell_size, total_Size_Factor and
    initial_total_cell_size (labelling data), ntr; var: nCells, nCounts,
    pass_basic_filter, frac, use_for_pca, ntr; layers: X_<layer> per raw layer;
    obsm: X_pca; uns: pp (with ``size_factors``: the obs column that divided each layer),
    PCs, pca_mean, explained_variance_ratio_, feature_selection
    """
    _check_legacy_options(legacy)
    adata = adata.copy() if copy else adata
    pre = Preprocessor(
        filter_cells_by_outliers_kwargs=fc_kwargs,
        filter_genes_by_outliers_kwargs=fg_kwargs,
        size_factor_kwargs={"method": sz_method, "scale_to": scale_to},
        select_genes_kwargs={
            "n_top_genes": n_top_genes,
            "exprs_frac_for_gene_exclusion": exprs_frac_for_gene_exclusion,
        },
        pca_kwargs={"n_pca_components": num_dim},
        gene_append_list=genes_to_append,
        gene_exclude_list=genes_to_exclude,
        force_gene_list=genes_to_use,
        keep_filtered_cells=bool(keep_filtered_cells),
        size_factor_per_layer=size_factor_per_layer,
    )
    pre.preprocess_adata(adata, recipe="monocle", tkey=tkey, experiment_type=experiment_type)
    return adata if copy else None
