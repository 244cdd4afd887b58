"""What the tools read: dynamo's X (lazily normalised) or a layer, and gene names."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np

from .._core.errors import InputError, MissingKeyError
from ..graph.preprocess import normalized


def dynamo_x(adata: ad.AnnData, cols: np.ndarray | None = None) -> Any:
    """X as dynamo holds it after preprocessing, lazily, over the columns ``cols``.

    dynadask keeps counts in X and records dynamo's transform in ``uns['pp']``
    (``X_normalized`` with ``obs['Size_Factor']``, ``X_norm_method == 'log1p'``); without
    that record X is read as it is.
    """
    pp = adata.uns.get("pp", {})
    if adata.X is None:
        raise MissingKeyError("this AnnData has no X: pass layer=<a layer> instead")
    normed = bool(pp.get("X_normalized")) and "Size_Factor" in adata.obs
    log = pp.get("X_norm_method") == "log1p"
    if not normed and not log:
        x = adata.X
        return x if cols is None else _take(x, cols)
    sf = np.asarray(adata.obs["Size_Factor"], dtype=np.float64) if normed else None
    sf = np.ones(adata.n_obs) if sf is None else sf
    return normalized(adata.X, sf, genes=cols, log=log)


def _take(x: Any, cols: np.ndarray) -> Any:
    from ..graph.blocks import take_columns

    return take_columns(x, np.asarray(cols))


def layer_data(adata: ad.AnnData, layer: str | None, cols: np.ndarray | None = None) -> Any:
    """``layers[layer]`` (or dynamo's X for ``None`` / ``'X'``) over the columns ``cols``."""
    if layer in (None, "X"):
        return dynamo_x(adata, cols)
    if layer not in adata.layers:
        raise MissingKeyError(
            f"layers[{layer!r}] is missing (layers present: {sorted(adata.layers)})"
        )
    x = adata.layers[layer]
    return x if cols is None else _take(x, cols)


def dynamo_case(adata: ad.AnnData, genes: Any) -> list[str]:
    """The genes of ``genes`` in ``var_names``, matched in var_names' case (dynamo's rule).

    All-upper var names (human) match upper-cased genes, capitalised ones (mouse) match
    capitalised genes, others lower-cased genes; the order is that of ``var_names``.
    """
    names = adata.var_names
    genes = [str(g) for g in np.atleast_1d(np.asarray(genes, dtype=object))]
    first = str(names[0])
    if first.isupper():
        wanted = genes
    elif first[0].isupper() and first[1:].islower():
        wanted = [g.capitalize() for g in genes]
    else:
        wanted = [g.lower() for g in genes]
    found = list(names.intersection(wanted))
    if not found:
        raise InputError(
            f"none of the {len(genes)} genes given is in var_names (e.g. {genes[:3]}): check "
            "the gene names"
        )
    return found
