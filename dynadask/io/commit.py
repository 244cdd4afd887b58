"""Write a stage's results into the AnnData, and into its store when it has one, atomically.

Every stage ends with one call to :func:`commit`. For an in-memory AnnData the results are
computed (all in one Dask compute) and assigned. For a store-backed AnnData (opened with
:func:`dynadask.io.open`), the writer's lock is taken, the results are written by the
workers into a staging folder beside the store together with the stage's record
(``uns['dynadask']['stages']``), and only when everything succeeded are they switched in by
:func:`dynadask.io.journal.publish`: a journal, then one rename per key with the old values
kept until the switch completes (in an object store, which cannot rename, copies and deletes
that can be repeated: :mod:`dynadask.io.objectstore`). A failure at any point leaves the
store with all of its old values (the switch is undone) or, when the process dies after the
journal, all of the new ones once the store is next opened (docs/architecture.md, section 4).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import zarr
from scipy import sparse

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError
from .._core.settings import get_chunk_policy
from . import objectstore
from .format import open_group, write_elem
from .journal import JOURNAL, publish, store_lock
from .location import Remote, location
from .objectstore import remove_prefix
from .open import LAZY_ATTR, _lazy, is_large, lazy_array, read_uns
from .writers import quiet_zarr, remove, remove_settled, write_arrays

_MATRIX_SLOTS = ("layers", "obsm", "varm", "obsp", "varp")
_N = {"layers": (0, 1), "obsm": (0,), "varm": (1,), "obsp": (0, 0), "varp": (1, 1), "X": (0, 1)}


def store_path(adata: ad.AnnData) -> Path | Remote | None:
    """Return the store ``adata`` was opened from, or ``None`` for an in-memory AnnData.

    A store in an object store is returned as its :class:`~dynadask.io.location.Remote`.

    An AnnData whose shape no longer matches its store (a subset or a concatenation), or
    that was opened before the store's rows were reordered (:func:`dynadask.io.reorder`),
    is treated as in-memory, so that results never go into the wrong store or the wrong rows.
    """
    record = adata.uns.get(keys.DYNADASK, {})
    path = record.get(keys.STORE) if isinstance(record, Mapping) else None
    if not path:
        return None
    where = location(path)
    if not where.exists():
        return None
    root = open_group(where)
    shape = tuple(root[s][root[s].attrs["_index"]].shape[0] for s in ("obs", "var"))
    if shape != adata.shape:
        return None
    if record.get(keys.ORDER_ID) != store_order_id(root):
        return None
    return where


def store_order_id(root: Any) -> str | None:
    """The id of the store's row order (changed by every reorder; ``None`` before any)."""
    return root.attrs.get(keys.DYNADASK, {}).get(keys.ORDER_ID)


def commit(
    adata: ad.AnnData,
    stage: str,
    *,
    X: Any = None,  # noqa: N803 - AnnData's name
    layers: Mapping[str, Any] | None = None,
    obsm: Mapping[str, Any] | None = None,
    varm: Mapping[str, Any] | None = None,
    obsp: Mapping[str, Any] | None = None,
    varp: Mapping[str, Any] | None = None,
    obs: Mapping[str, Any] | pd.DataFrame | None = None,
    var: Mapping[str, Any] | pd.DataFrame | None = None,
    uns: Mapping[str, Any] | None = None,
    waves: int | None = None,
) -> None:
    """Write the results of ``stage`` into ``adata`` (and its store) in one step.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    stage
        Name of the stage (``'moments'``, ``'dynamics'``, …), recorded when it completes.
    X
        A new main matrix (cells x genes), as the layers.
    layers, obsm, varm, obsp, varp
        Matrices by key: numpy, scipy sparse or Dask arrays (sparse Dask blocks allowed).
    obs, var
        Columns by name: 1-D arrays (numpy or Dask) or pandas Series of matching length;
        or a whole data frame, which replaces the annotations, index included (for a
        reorder of the rows).
    uns
        Entries (arrays, scalars, dicts of them) set at ``adata.uns[key]``. A Dask array
        inside an entry (a cell-indexed result such as per-cell Jacobians) is computed with
        the rest: for a store it is written chunk by chunk by the workers, marked
        ``dynadask-lazy`` and left in the store, the AnnData's ``uns`` then holding a Dask
        array over it (also after :func:`dynadask.io.open`); in memory it is computed.
    waves
        For a store: write the lazy dense matrices this many row blocks at a time, one
        compute per wave (see :func:`dynadask.io.writers.write_arrays`); ``None`` writes
        everything in one compute.

    Raises
    ------
    dynadask.InputError
        If an array's shape does not fit its slot (a ``ValueError``); nothing is written then.
    dynadask.StoreLockedError
        If another process is writing the store.
    """
    matrices = {
        s: dict(v or {})
        for s, v in zip(_MATRIX_SLOTS, (layers, obsm, varm, obsp, varp), strict=True)
    }
    if X is not None:
        matrices["X"] = {"": X}
    frames = {s: f for s, f in (("obs", obs), ("var", var)) if isinstance(f, pd.DataFrame)}
    columns = {s: ({} if s in frames else dict(c or {})) for s, c in (("obs", obs), ("var", var))}
    _check_shapes(adata, matrices, columns, frames)
    path = store_path(adata)
    record = dict(adata.uns.get(keys.DYNADASK, {}))
    record[keys.STAGES] = {**record.get(keys.STAGES, {}), stage: _now()}
    if path is None:
        _assign_in_memory(adata, matrices, columns, frames, dict(uns or {}))
    else:
        stored = {k: v for k, v in record.items() if k not in (keys.STORE, keys.ORDER_ID)}
        uns = {**dict(uns or {}), keys.DYNADASK: stored}
        _commit_to_store(adata, path, stage, matrices, columns, frames, uns, waves)
    adata.uns[keys.DYNADASK] = record


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _check_shapes(adata: ad.AnnData, matrices: dict, columns: dict, frames: dict) -> None:
    for slot, frame in frames.items():
        n = adata.n_obs if slot == "obs" else adata.n_vars
        if len(frame) != n:
            raise InputError(f"the new {slot} frame has {len(frame)} rows, expected {n}")
    for slot, items in matrices.items():
        for key, x in items.items():
            want = tuple(adata.shape[a] for a in _N[slot])
            if tuple(x.shape[: len(want)]) != want:
                raise InputError(
                    f"{slot}[{key!r}] has shape {tuple(x.shape)} but this AnnData needs "
                    f"{want} in its leading axes: the result does not describe these cells/genes"
                )
    for slot, items in columns.items():
        n = adata.n_obs if slot == "obs" else adata.n_vars
        for key, x in items.items():
            if len(x) != n:
                raise InputError(f"{slot}[{key!r}] has {len(x)} values, expected {n}")


def split_lazy(value: Any, path: str) -> tuple[Any, dict[str, da.Array]]:
    """``value`` without its Dask arrays (nested dicts walked) and those arrays by path."""
    if isinstance(value, da.Array):
        return None, {path: value}
    if not isinstance(value, Mapping):
        return value, {}
    plain, lazy = {}, {}
    for key, item in value.items():
        rest, found = split_lazy(item, f"{path}/{key}")
        lazy.update(found)
        if rest is not None or not found:
            plain[key] = rest
    return plain, lazy


def _put(uns: dict, path: str, value: Any) -> None:
    """Set ``uns[a][b]... = value`` for ``path = 'uns/a/b/...'``."""
    *parents, last = path.split("/")[1:]
    for key in parents:
        uns = uns.setdefault(key, {})
    uns[last] = value


def _assign_in_memory(
    adata: ad.AnnData, matrices: dict, columns: dict, frames: dict, uns: dict
) -> None:
    flat = [(s, k, x) for s, items in matrices.items() for k, x in items.items()]
    flat += [(s, k, x) for s, items in columns.items() for k, x in items.items()]
    plain, lazy = split_lazy(uns, "uns")
    flat += [("uns", path, x) for path, x in lazy.items()]
    values = compute(*[x for _, _, x in flat])
    for slot, frame in frames.items():
        setattr(adata, slot, frame)
    for (slot, key, _), value in zip(flat, values, strict=True):
        if slot == "X":
            adata.X = value
        elif slot == "uns":
            _put(plain, key, np.asarray(value))
        elif slot in ("obs", "var"):
            getattr(adata, slot)[key] = (
                np.asarray(value) if not isinstance(value, pd.Series) else value.values
            )
        else:
            getattr(adata, slot)[key] = value
    adata.uns.update(plain)


def _commit_to_store(
    adata: ad.AnnData,
    path: Path | Remote,
    stage: str,
    matrices: dict,
    columns: dict,
    frames: dict,
    uns: dict,
    waves: int | None = None,
) -> None:
    staging = path.with_name(f"{path.name}.staging-{stage}-{uuid.uuid4().hex[:8]}")
    with store_lock(path):
        try:
            moved, columns = _stage_everything(
                adata, staging, matrices, columns, frames, uns, waves
            )
        except BaseException:
            _discard(staging)
            raise
        try:
            publish(path, staging, moved, stage)
        except BaseException:
            if not _has_journal(staging):  # the switch never started
                _discard(staging, settled=True)
            raise
    root = open_group(path)
    rows = _block_rows(adata)
    for slot, frame in frames.items():
        setattr(adata, slot, frame)
    for slot, items in matrices.items():
        for key in items:
            if slot == "X":
                adata.X = _lazy(root["X"], rows)
            else:
                getattr(adata, slot)[key] = _lazy(root[f"{slot}/{key}"], rows)
    for slot, items in columns.items():
        frame = getattr(adata, slot)
        for key, value in items.items():
            frame[key] = value
    adata.uns.update(_stored_uns(root, uns))


def _stored_uns(root: zarr.Group, uns: dict) -> dict[str, Any]:
    """The committed uns entries as the store opens them.

    Dask arrays over the store for the lazy ones and the large ones (no second copy on the
    client), the rest in memory.
    """
    plain, lazy = split_lazy(uns, "uns")
    for name in lazy:
        _put(plain, name, lazy_array(root[name]))
    for key, value in plain.items():
        if key != keys.DYNADASK and _holds_large(value):
            node = root[f"uns/{key}"]
            plain[key] = read_uns(node) if isinstance(node, zarr.Group) else lazy_array(node)
    return {k: v for k, v in plain.items() if k != keys.DYNADASK}


def _holds_large(value: Any) -> bool:
    """Whether an uns entry holds a numeric numpy array that opens lazily from a store."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf" and is_large(value)
    if isinstance(value, Mapping):
        return any(_holds_large(v) for v in value.values())
    return False


def _has_journal(staging: Path | Remote) -> bool:
    if isinstance(staging, Remote):
        return objectstore.read_journal(staging) is not None
    return (staging / JOURNAL).exists()


def _discard(staging: Path | Remote, settled: bool = False) -> None:
    """Remove a staging folder or prefix whose switch never started."""
    if isinstance(staging, Remote):
        remove_prefix(staging)
    elif settled:
        remove(staging)
    else:
        remove_settled(staging)


def _block_rows(adata: ad.AnnData) -> int:
    for x in [adata.X, *adata.layers.values()]:
        if isinstance(x, da.Array):
            return x.chunks[0][0]
    return get_chunk_policy().rows_per_block(adata.n_vars, adata.n_obs)


def _stage_everything(
    adata: ad.AnnData,
    staging: Path | Remote,
    matrices: dict,
    columns: dict,
    frames: dict,
    uns: dict,
    waves: int | None = None,
) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """Write every result under ``staging`` (same keys as in the store).

    Returns the staged keys and the computed obs/var columns.
    """
    root = open_group(staging, mode="w")
    small: list[tuple[str, Any]] = []
    uns_lazy, moved = _stage_uns(root, uns)
    lazy = dict(uns_lazy)
    for slot, items in matrices.items():
        for key, x in items.items():
            name = "X" if slot == "X" else f"{slot}/{key}"
            moved.append(name)
            if isinstance(x, da.Array):
                lazy[name] = x
            else:
                small.append((name, x))
    flat = [(s, k, x) for s, items in columns.items() for k, x in items.items()]
    values = write_arrays(root, lazy, [x for _, _, x in flat], waves)
    for name in uns_lazy:
        root[name].attrs[LAZY_ATTR] = True
    column_values: dict[str, dict[str, Any]] = {"obs": {}, "var": {}}
    for (slot, key, _), value in zip(flat, values, strict=True):
        column_values[slot][key] = np.asarray(value)
    for name, x in small:
        with quiet_zarr():
            write_elem(root, name, _storable(x))
    for slot, frame in frames.items():
        with quiet_zarr():
            write_elem(root, slot, frame)
        moved.append(slot)
    for slot, values in column_values.items():
        if values:
            frame = getattr(adata, slot).copy()
            for key, value in values.items():
                frame[key] = np.asarray(value)
            with quiet_zarr():
                write_elem(root, slot, frame)
            moved.append(slot)
    return moved, column_values


def _stage_uns(root: Any, uns: dict) -> tuple[dict[str, da.Array], list[str]]:
    """Write the in-memory part of each uns entry; return its Dask arrays by path."""
    lazy, moved = {}, []
    for key, value in uns.items():
        plain, found = split_lazy(value, f"uns/{key}")
        if plain is not None:
            with quiet_zarr():
                write_elem(root, f"uns/{key}", plain)
        lazy.update(found)
        moved.append(f"uns/{key}")
    return lazy, moved


def _storable(x: Any) -> Any:
    """An in-memory result as it is written: CSR, a data frame, or a numpy array."""
    if sparse.issparse(x):
        return sparse.csr_matrix(x)
    return x if isinstance(x, pd.DataFrame) else np.asarray(x)
