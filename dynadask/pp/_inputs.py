"""Resolve the expression layers of an AnnData and describe its experiment (uns['pp'])."""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph.preprocess import cell_totals
from ..io import store_path

# raw count layers, in the order dynamo lists them
SPLICING = (keys.SPLICED, keys.UNSPLICED)
LABELLING = keys.NEW_TOTAL
SPLICING_LABELLING = keys.LABELLING_LAYERS
RAW_LAYERS = SPLICING + LABELLING + SPLICING_LABELLING
EXPERIMENT_TYPES = ("conventional", "one-shot", "kin", "deg", "mix_std_stm", "mix_pulse_chase")


def x_counts(adata: ad.AnnData) -> Any:
    """Return the counts behind ``X``: ``adata.X``, else the spliced (or total) layer.

    Raises
    ------
    ValueError
        If there is neither ``X`` nor a spliced/total layer.
    """
    if adata.X is not None:
        return adata.X
    for name in (keys.SPLICED, keys.TOTAL):
        if name in adata.layers:
            return adata.layers[name]
    raise InputError(
        "this AnnData has no X and no 'spliced' or 'total' layer: preprocessing needs raw "
        f"counts (layers present: {sorted(adata.layers)})"
    )


def fit_cells(
    adata: ad.AnnData, pending: Any = None, *, keep_filtered: bool = False
) -> np.ndarray | None:
    """Cells that per-gene statistics and size-factor locations are computed over.

    A store cannot drop the cells that fail the basic filter; they stay, flagged ``False``
    in ``obs['pass_basic_filter']``. Statistics then leave them out, which gives the numbers
    an in-memory run gets after dropping them. ``None`` means every cell (in memory, or
    with ``keep_filtered``, or when every cell passes).
    """
    if keep_filtered or store_path(adata) is None:
        return None
    mask = pending.column(adata, "obs", keys.PASS_BASIC_FILTER) if pending else None
    if mask is None and keys.PASS_BASIC_FILTER in adata.obs:
        mask = adata.obs[keys.PASS_BASIC_FILTER].to_numpy()
    if mask is None or np.asarray(mask, dtype=bool).all():
        return None
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise InputError("no cell passes the basic filter (obs['pass_basic_filter'] is all False)")
    return mask


_NONE_PASS = {
    "obs": "no cell passes the cell filter: relax its thresholds (min_expr_genes_*)",
    "var": "no gene passes the gene filter: relax its thresholds (min_cell_*, ...)",
}


def subset_cells(adata: ad.AnnData, mask: np.ndarray, *, keep_filtered: bool) -> bool:
    """Drop failing cells in memory (dynamo's default); a store's cells are only flagged.

    Returns whether ``adata`` was subset.
    """
    return not keep_filtered and subset_in_place(adata, mask, "obs", stacklevel=4)


def subset_in_place(adata: ad.AnnData, mask: np.ndarray, axis: str, stacklevel: int = 3) -> bool:
    """Drop failing cells (``axis='obs'``) or genes (``'var'``) from an in-memory AnnData.

    A store keeps them, flagged in ``pass_basic_filter``, with a warning. Returns whether
    ``adata`` was subset.
    """
    if mask.all():
        return False
    if not mask.any():
        raise InputError(_NONE_PASS[axis])
    if store_path(adata) is not None:
        what = "cells" if axis == "obs" else "genes"
        warnings.warn(
            f"{int((~mask).sum())} {what} fail the basic filter; a store is not subset in "
            f"place, so they stay (flagged in {axis}['pass_basic_filter'])",
            stacklevel=stacklevel,
        )
        return False
    getattr(adata, f"_inplace_subset_{axis}")(mask)
    return True


def raw_layers(adata: ad.AnnData, layers: str | list[str] = "all") -> dict[str, Any]:
    """Return the raw count matrices to process by name, ``'X'`` first.

    Parameters
    ----------
    adata
        The AnnData.
    layers
        ``'all'`` (X and every raw layer present: spliced, unspliced, new, total, uu, ul,
        su, sl) or a list of names (``'X'`` allowed).

    Raises
    ------
    KeyError
        If a requested layer is not in ``adata.layers``.
    """
    wanted = (
        ["X", *RAW_LAYERS]
        if layers == "all"
        else [layers]
        if isinstance(layers, str)
        else list(layers)
    )
    missing = [n for n in wanted if n != "X" and n not in adata.layers and layers != "all"]
    if missing:
        raise MissingKeyError(
            f"layer(s) {missing} not in adata.layers (present: {sorted(adata.layers)})"
        )
    out = {"X": x_counts(adata)} if "X" in wanted else {}
    out.update({n: adata.layers[n] for n in wanted if n != "X" and n in adata.layers})
    return out


def total_layers(adata: ad.AnnData) -> list[str] | None:
    """The layers summed into total RNA for the total size factor (labelling data), or ``None``."""
    present = set(adata.layers)
    if set(SPLICING_LABELLING) <= present:
        return list(SPLICING_LABELLING)
    if set(LABELLING) <= present:
        return [keys.TOTAL]
    return None


def experiment_info(
    adata: ad.AnnData, tkey: str | None = None, experiment_type: str | None = None
) -> dict[str, Any]:
    """Describe the experiment as dynamo records it in ``uns['pp']``.

    Raises
    ------
    ValueError
        If labelling layers are present and ``tkey`` is not an obs column (and no ``time``
        column exists), or ``experiment_type`` is unknown.
    """
    present = set(adata.layers)
    splicing_labelling = set(SPLICING_LABELLING) <= present
    has_labelling = splicing_labelling or set(LABELLING) <= present
    has_splicing = splicing_labelling or set(SPLICING) <= present
    if has_labelling:
        tkey = _check_tkey(adata, tkey)
    if experiment_type is not None and experiment_type not in EXPERIMENT_TYPES:
        raise InputError(
            f"unknown experiment_type {experiment_type!r}: use one of {EXPERIMENT_TYPES}"
        )
    if experiment_type is None:
        experiment_type = "conventional"
        if has_labelling:
            experiment_type = _infer_labelling_type(adata, tkey)
    layers = ["X"] + [n for n in RAW_LAYERS if n in present]
    return {
        "tkey": tkey,
        "has_splicing": has_splicing,
        "has_labeling": has_labelling,
        "has_protein": "protein" in adata.obsm,
        "splicing_labeling": splicing_labelling,
        "experiment_type": experiment_type,
        "experiment_layers": layers,
        "experiment_total_layers": total_layers(adata),
    }


def _check_tkey(adata: ad.AnnData, tkey: str | None) -> str:
    if tkey is None and "time" in adata.obs:
        warnings.warn("no tkey given: using obs['time'] as the labelling time", stacklevel=3)
        tkey = "time"
    if tkey is None or tkey not in adata.obs:
        raise MissingKeyError(
            f"labelling layers are present but tkey={tkey!r} is not an obs column: pass the "
            "obs column that holds each cell's labelling time as tkey"
        )
    if np.nanmax(np.asarray(adata.obs[tkey], dtype=float)) > 60:
        warnings.warn("labelling times above 60: hours are the recommended unit", stacklevel=3)
    return tkey


def _infer_labelling_type(adata: ad.AnnData, tkey: str) -> str:
    """one-shot for a single labelling time; else kin if the labelled fraction grows with time."""
    t = np.asarray(adata.obs[tkey], dtype=float)
    if np.unique(t).size == 1:
        return "one-shot"
    names = ("ul", "sl", "uu", "su") if keys.NEW not in adata.layers else (keys.NEW, keys.TOTAL)
    (cells,) = compute(cell_totals(*[adata.layers[n] for n in names]), desc="labelled fraction")
    new = cells[:, 0] + (cells[:, 1] if names[0] == "ul" else 0)
    total = cells.sum(axis=1) if names[0] == "ul" else cells[:, 1]
    frac = new / np.where(total > 0, total, 1)
    covariance = np.mean(frac * t) - frac.mean() * t.mean()
    return "kin" if covariance > 0 else "deg"
