"""dynamo's cell-cycle scores: phase marker coherence, per-cell phase scores, phase and order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import cell_cycle as gcc
from ..graph.preprocess import normalized
from ..kernels import cell_cycle as kcc
from ._cell_cycle_genes import PHASE_GENES
from ._inputs import fit_cells
from ._pending import Pending
from .gene_selection import x_view
from .gini import layer_data

PHASES = list(kcc.PHASES)


def _cased(names: tuple[str, ...], first: str) -> list[str]:
    """The marker names in the case of the data's first gene name (dynamo's rule)."""
    if first.isupper():
        return list(names)
    if first[:1].isupper() and first[1:].islower():
        return [n.capitalize() for n in names]
    return [n.lower() for n in names]


def _source(adata: ad.AnnData, pending: Pending | None, layer: str | None) -> tuple[Any, int, int]:
    """The matrix read, and how many log1p the coherence and the scores apply to it."""
    if layer is None or layer == "X":
        if pending is not None and pending.X is not None:  # X replaced within the stage
            return pending.X, 0, 0
        x, sf, log = x_view(adata, pending)
        if log or not np.all(sf == 1):
            x = normalized(x, sf, log=log)
        return x, 0, 0
    if layer not in adata.layers:
        raise MissingKeyError(f"layer {layer!r} not found (layers: {sorted(adata.layers)})")
    pp = adata.uns.get("pp", {})
    if pending is not None:
        pp = pending.uns.get("pp", pp)
    logs = int("layers_norm_method" in pp and pp["layers_norm_method"] is None)
    return layer_data(adata, layer), logs, logs + int(not layer.startswith("X_"))


def _members(adata: ad.AnnData, lists: Mapping[str, list[str]]) -> tuple[np.ndarray, list]:
    """The union of the genes present (var positions) and each phase's positions in it."""
    per_phase = []
    for phase, names in lists.items():
        idx = adata.var_names.get_indexer(list(names))
        idx = np.unique(idx[idx >= 0])
        if idx.size == 0:
            raise InputError(
                f"none of the {phase} marker genes is in var_names (e.g. {list(names)[:3]}): "
                "pass gene_list with this data's gene names"
            )
        per_phase.append(idx)
    union = np.unique(np.concatenate(per_phase))
    return union, [np.searchsorted(union, idx) for idx in per_phase]


def cell_cycle_results(
    adata: ad.AnnData,
    pending: Pending | None = None,
    *,
    layer: str | None = None,
    gene_list: Mapping[str, list[str]] | None = None,
    refine: bool = True,
    threshold: float = 0.3,
) -> Pending:
    """Compute the cell-cycle keys into a :class:`Pending` (X as ``pending`` leaves it)."""
    out = Pending()
    x, corr_logs, score_logs = _source(adata, pending, layer)
    kept = fit_cells(adata, pending)
    if gene_list is None:
        first = str(adata.var_names[0])
        lists = {p: (_cased(g, first) if refine else list(g)) for p, g in PHASE_GENES.items()}
    else:
        lists = {str(k): list(v) for k, v in gene_list.items()}
    if list(lists) != PHASES:
        raise InputError(
            f"gene_list must have the phases {PHASES} in this order, not {list(lists)}"
        )
    union, members = _members(adata, lists)
    if gene_list is None and refine:
        (sums,) = compute(
            gcc.coherence_sums(x, members, union, logs=corr_logs, cells=kept),
            desc="cell-cycle marker coherence",
        )
        corr = kcc.coherence(sums, len(members))
        members = [m[c >= threshold] for m, c in zip(members, corr, strict=True)]
    genes = {
        p: np.asarray(adata.var_names[union[m]], dtype=object)
        for p, m in zip(PHASES, members, strict=True)
    }
    (totals,) = compute(gcc.phase_totals(x, members, union, logs=score_logs), desc="phase totals")
    totals = np.asarray(totals)
    scores = kcc.phase_scores(totals, kept)
    phase, progress, order = kcc.phase_progress(scores)
    if kept is not None:
        _, _, order_kept = kcc.phase_progress(scores[kept])
        order = np.full(adata.n_obs, np.nan)
        order[kept] = order_kept
    labels = pd.Categorical(np.asarray(PHASES, dtype=object)[phase])
    frame = pd.DataFrame(scores, index=adata.obs_names.copy(), columns=PHASES)
    frame["cell_cycle_phase"] = labels
    frame["cell_cycle_progress"] = progress
    frame["cell_cycle_order"] = order
    out.obs["cell_cycle_phase"] = labels
    out.obsm["cell_cycle_scores"] = frame
    out.uns["cell_phase_order"] = list(PHASES)
    out.uns["cell_phase_genes"] = genes
    return out


def cell_cycle_scores(
    adata: ad.AnnData,
    layer: str | None = None,
    gene_list: Mapping[str, list[str]] | None = None,
    *,
    refine: bool = True,
    threshold: float = 0.3,
    copy: bool = False,
) -> ad.AnnData | None:
    """Score each cell's cell-cycle phase from marker genes, out of core (two passes).

    dynamo's rule: the human marker lists of the phases G1-S, S, G2-M, M, M-G1 (in the case
    of the data's gene names) are refined to the genes whose Pearson correlation with their
    phase's mean profile is at least ``threshold`` (one map-reduce over row blocks); each
    cell's summed expression per phase (one pass) is z-scored over cells; a cell's score
    for a phase is the correlation, across the five phases, of its profile with that
    phase's indicator; its phase is the best score, its progress the previous phase's score
    minus the next one's, its order its rank by progress within its phase (0 to 1).

    Parameters
    ----------
    adata
        Preprocessed AnnData (in memory or store-backed).
    layer
        ``None`` (X as preprocessing leaves it) or a layer (log-transformed as dynamo does:
        once when ``uns['pp']['layers_norm_method']`` is None, again for the scores unless
        the layer is an ``X_*`` layer).
    gene_list
        Phase -> gene names (the five phases, in order), used as given (no refinement).
    refine
        Refine the default lists by coherence.
    threshold
        The correlation a marker needs to stay.
    copy
        Work on (and return) a copy.

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy``.

    Writes
    ------
    obs['cell_cycle_phase'] (categorical); obsm['cell_cycle_scores'] (data frame: the five
    phase scores, cell_cycle_phase, cell_cycle_progress, cell_cycle_order);
    uns['cell_phase_order'], uns['cell_phase_genes']
    """
    adata = adata.copy() if copy else adata
    out = cell_cycle_results(
        adata, layer=layer, gene_list=gene_list, refine=refine, threshold=threshold
    )
    out.commit(adata, "cell_cycle_scores")
    return adata if copy else None
