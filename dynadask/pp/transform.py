"""dynamo's layer transforms: ``scale`` (to a total per cell) and ``log1p_adata_layer``."""

from __future__ import annotations

import anndata as ad
import numpy as np

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph.preprocess import scaled
from ..graph.summaries import cell_totals
from ._pending import Pending
from .gini import available_layers
from .normalization import log1p


def scale(
    adata: ad.AnnData,
    layers: str | list[str] | None = None,
    scale_to_layer: str | None = None,
    *,
    scale_to: float = 1e4,
) -> ad.AnnData:
    """Scale each layer so that every cell's total is ``scale_to`` (CSR, float32).

    Each layer is divided by its own cell totals, as dynamo's loop does: dynamo reads
    ``scale_to_layer``'s totals but overwrites them with each layer's own before use, so
    ``scale_to_layer`` changes nothing (it is checked to be a layer). One pass over the
    layers for the totals; the scaled layers are written lazily, block by block. Cells
    without counts stay at 0.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    layers
        Layer names (default: every layer not named ``X_*``); X is not scaled.
    scale_to_layer
        A layer name (checked; see above).
    scale_to
        The total of each cell after scaling.

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    layers[<layer>] for each layer, replaced by its scaled values

    Raises
    ------
    dynadask.InputError
        If ``'X'`` is among the layers or ``scale_to`` is not positive.
    dynadask.MissingKeyError
        If a layer (or ``scale_to_layer``) is absent.
    """
    if layers is None:
        names = [n for n in available_layers(adata, "all") if n != "X"]
    else:
        names = available_layers(adata, layers)
    if "X" in names:
        raise InputError("scale works on layers, as dynamo's: X is not scaled; pass layer names")
    if scale_to_layer is not None and scale_to_layer not in adata.layers:
        raise MissingKeyError(f"scale_to_layer {scale_to_layer!r} is not in adata.layers")
    if not scale_to > 0:
        raise InputError(f"scale_to must be positive, not {scale_to}")
    if not names:
        return adata
    (totals,) = compute(cell_totals(*[adata.layers[n] for n in names]), desc="cell totals")
    totals = np.asarray(totals, dtype=np.float64).reshape(adata.n_obs, len(names))
    pending = Pending()
    for i, name in enumerate(names):
        factor = totals[:, i] / scale_to
        factor[factor == 0] = 1.0  # a cell without counts has nothing to scale
        pending.layers[name] = scaled(adata.layers[name], factor)
    pending.commit(adata, "scale")
    return adata


def log1p_adata_layer(adata: ad.AnnData, layer: str = "X", copy: bool = False) -> ad.AnnData:
    """``log(1 + x)`` of X or of one layer, in place (or on a copy).

    The same as :func:`log1p` with ``layers=[layer]``: for X, ``uns['pp']['X_norm_method']``
    records ``'log1p'`` (dynadask reads X by that record, so a logged X is not logged
    again; dynamo's function does not look).

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    layer
        ``'X'`` or a layer name.
    copy
        Work on (and return) a copy.

    Returns
    -------
    anndata.AnnData
        ``adata``, or the copy.

    Writes
    ------
    X and uns['pp']['X_norm_method'] for X; layers[<layer>] and
    uns['pp']['layers_norm_method'] for a layer
    """
    return log1p(adata, layers=[layer], copy=copy)
