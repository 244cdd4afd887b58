"""dynamo's new-to-total RNA ratio per cell and per gene (``calc_new_to_total_ratio``)."""

from __future__ import annotations

import anndata as ad
import numpy as np

from .._core.compute import compute
from ..graph.preprocess import sum_kept_rows
from ..graph.summaries import cell_totals
from ..kernels import summaries as ks
from ._inputs import fit_cells

# (new parts, total parts) by the layers present, in the order dynamo checks them
_RATIOS = (
    (("new",), ("total",)),
    (("ul", "sl"), ("ul", "sl", "uu", "su")),
    (("unspliced",), ("unspliced", "spliced")),
)


def ratio_layers(adata: ad.AnnData) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The layers summed into new and total RNA, or ``None`` without such layers."""
    for new, total in _RATIOS:
        if set(new) | set(total) <= set(adata.layers):
            return new, total
    return None


def calc_new_to_total_ratio(
    adata: ad.AnnData,
) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """New (labelled, or unspliced) RNA over total RNA, per cell and per gene.

    As dynamo: ``new / total`` with ``new`` and ``total`` layers; ``(ul + sl) / (uu + ul +
    su + sl)`` with the four labelling layers; ``unspliced / (unspliced + spliced)`` with
    splicing layers only. One pass over the row blocks gives each cell's and each gene's
    sums. On a store, the per-gene sums leave out cells flagged ``False`` in
    ``obs['pass_basic_filter']`` (an in-memory AnnData has dropped them). A zero total gives
    NaN (or inf), as in dynamo.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData with raw layers.

    Returns
    -------
    tuple
        ``(ntr, var_ntr)``: 1-D float64 arrays over the cells and the genes, or
        ``(None, None)`` without labelling or splicing layers.

    Writes
    ------
    Nothing (dynamo's preprocessing stores the two as obs['ntr'] and var['ntr']).
    """
    found = ratio_layers(adata)
    if found is None:
        return None, None
    new, total = found
    names = list(dict.fromkeys(new + total))
    arrays = [adata.layers[n] for n in names]
    kept = fit_cells(adata)
    per_gene = [sum_kept_rows(ks.column_sums, x, cells=kept) for x in arrays]
    cells, *genes = compute(cell_totals(*arrays), *per_gene, desc="new / total")
    cells = np.asarray(cells)
    by_cell = {n: cells[:, i] for i, n in enumerate(names)}
    by_gene = dict(zip(names, genes, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        ntr = sum(by_cell[n] for n in new) / sum(by_cell[n] for n in total)
        var_ntr = sum(by_gene[n] for n in new) / sum(by_gene[n] for n in total)
    return np.asarray(ntr, dtype=np.float64), np.asarray(var_ntr, dtype=np.float64)
