"""Create a new store from lazy arrays (simulations, resampled atlases), in parallel."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.array as da
import pandas as pd

from .._core.errors import InputError, StoreExistsError
from .._core.settings import get_chunk_policy
from .format import ANNDATA_ATTRS, DICT_ATTRS, consolidate, open_group, write_elem
from .writers import quiet_zarr, remove, write_arrays

_EMPTY_SLOTS = ("layers", "obsm", "varm", "obsp", "varp", "uns")


def create_store(
    path: str | Path,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    layers: dict[str, da.Array],
    *,
    X: da.Array | None = None,
    uns: dict[str, Any] | None = None,
    obsm: dict[str, Any] | None = None,
    chunk_cells: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a new AnnData Zarr store whose matrices are computed by the workers.

    Parameters
    ----------
    path
        The store to create.
    obs, var
        Cell and gene annotations (in memory).
    layers
        Lazy matrices (cells x genes) by layer name; blocks may be dense or scipy CSR.
        Seed any random block by its block index so the result does not depend on the
        scheduler.
    X
        Lazy main matrix, if any.
    uns, obsm
        Small unstructured entries and per-cell matrices (numpy or lazy).
    chunk_cells
        Cells per row block recorded in the store (Dask blocks when opened); by default the
        row chunks of the first layer.
    overwrite
        Replace an existing store.

    Returns
    -------
    pathlib.Path
        The new store. It appears at ``path`` only once everything is written.

    Raises
    ------
    dynadask.StoreExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If a matrix's shape does not match ``obs`` x ``var``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreExistsError(f"{path} exists: pass overwrite=True to replace it")
    arrays = {f"layers/{k}": v for k, v in layers.items()}
    if X is not None:
        arrays["X"] = X
    for name, x in arrays.items():
        if tuple(x.shape) != (len(obs), len(var)):
            raise InputError(
                f"{name} has shape {tuple(x.shape)} but obs x var is {(len(obs), len(var))}"
            )
    first = next(iter(arrays.values()), None)
    rows = chunk_cells or (first.chunks[0][0] if first is not None else None)
    rows = rows or get_chunk_policy().rows_per_block(len(var), len(obs))
    lazy_obsm = {f"obsm/{k}": v for k, v in (obsm or {}).items() if isinstance(v, da.Array)}
    tmp = path.with_name(f"{path.name}.creating-{os.getpid()}")
    remove(tmp)
    try:
        root = open_group(tmp, mode="w")
        root.attrs.update({**ANNDATA_ATTRS, "dynadask": {"chunk_cells": int(rows)}})
        with quiet_zarr():
            write_elem(root, "obs", obs)
            write_elem(root, "var", var)
            for slot in _EMPTY_SLOTS:
                write_elem(root, slot, {})
            for key, value in (uns or {}).items():
                write_elem(root, f"uns/{key}", value)
            for key, value in (obsm or {}).items():
                if not isinstance(value, da.Array):
                    write_elem(root, f"obsm/{key}", value)
        write_arrays(root, {**arrays, **lazy_obsm})
        root["layers"].attrs.update(DICT_ATTRS)
        consolidate(tmp)
        remove(path)
        os.replace(tmp, path)
    finally:
        remove(tmp)
    return path
