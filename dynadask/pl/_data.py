"""What the figures read: embeddings, obs columns and single gene columns, fetched together.

Plotting only ever pulls vectors of length n_cells (a few at a time) or small arrays out of
the AnnData. Lazy pieces are collected first and computed in one pass
(:func:`gather`), so a store-backed AnnData is read once per figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError

# layers whose values are signed (drawn with a diverging map, symmetric limits)
SIGNED_PREFIXES = ("velocity", "acceleration", "curvature", "divergence")
# obs columns whose values are signed: dyn.vf's divergence / curl, Jacobian elements and
# determinants, ddhodge's divergence ('acceleration_<basis>' in obs is a norm, not signed)
SIGNED_OBS_PREFIXES = ("divergence", "curl", "jacobian", "sensitivity")
SIGNED_OBS_SUFFIXES = ("_ddhodge_div",)


def is_signed(adata: ad.AnnData, name: str, layer: str) -> bool:
    """Whether the colour ``name`` is a signed quantity (drawn centred on zero).

    A gene read from a velocity-like layer, or an obs column of a signed quantity.
    """
    if name in adata.var_names:
        return layer.startswith(SIGNED_PREFIXES)
    return name.startswith(SIGNED_OBS_PREFIXES) or name.endswith(SIGNED_OBS_SUFFIXES)


# which function writes each kind of key, for error messages
MAKERS = {
    "X_": "dyn.tl.reduceDimension(adata, basis={basis!r})",
    "velocity_": "dyn.tl.cell_velocities(adata, basis={basis!r})",
    "grid_velocity_": "dyn.tl.cell_velocities(adata, basis={basis!r})",
    "M_": "dyn.tl.moments(adata)",
    keys.VELOCITY_S: "dyn.tl.dynamics(adata)",
    "gamma": "dyn.tl.dynamics(adata)",
}


def missing(what: str, key: str, maker: str) -> MissingKeyError:
    """Return the error raised when a key a figure needs is absent."""
    return MissingKeyError(f"{what} {key!r} is missing: run {maker} first")


def basis_key(adata: ad.AnnData, basis: str) -> str:
    """Return the obsm key holding coordinates of ``basis`` ('umap' -> 'X_umap').

    Raises
    ------
    KeyError
        If neither ``X_<basis>`` nor ``<basis>`` is in obsm.
    """
    for key in (f"X_{basis}", basis):
        if key in adata.obsm:
            return key
    maker = MAKERS["X_"].format(basis=basis.removeprefix("X_"))
    if basis == "pca":
        maker = "dyn.pp.recipe_monocle(adata) or dyn.pp.pca(adata)"
    raise missing("embedding", f"X_{basis}", maker)


def obsm_columns(adata: ad.AnnData, key: str, dims: Sequence[int]) -> Any:
    """Return columns ``dims`` of ``obsm[key]`` (lazy if the array is a Dask array).

    Raises
    ------
    ValueError
        If a requested column does not exist.
    """
    arr = adata.obsm[key]
    n_dim = arr.shape[1] if arr.ndim > 1 else 1
    bad = [d for d in dims if not -n_dim <= d < n_dim]
    if bad:
        raise InputError(f"obsm[{key!r}] has {n_dim} columns: x/y index {bad} does not exist")
    if isinstance(arr, pd.DataFrame):
        arr = arr.to_numpy()
    return arr[:, list(dims)]


def smoothed_layer(layer: str, use_smoothed: bool) -> str:
    """Return the layer actually read for ``layer`` (its moment layer when smoothed)."""
    smoothed = keys.moment_key(layer) if use_smoothed else None
    return smoothed or layer


def layer_array(adata: ad.AnnData, layer: str) -> Any:
    """Return X (``layer='X'``) or ``adata.layers[layer]``, raising when it is absent.

    Raises
    ------
    KeyError
        If the layer is missing or X is empty.
    """
    if layer == "X":
        if adata.X is None:
            raise MissingKeyError(
                "adata.X is empty: pass a layer that exists, e.g. layer="
                f"{next(iter(adata.layers), keys.M_S)!r}"
            )
        return adata.X
    if layer not in adata.layers:
        if layer.startswith(("M_", "velocity")):
            maker = MAKERS[keys.VELOCITY_S if layer.startswith("velocity") else "M_"]
            raise missing("layer", layer, maker)
        raise MissingKeyError(f"layer {layer!r} is missing: the layers are {sorted(adata.layers)}")
    return adata.layers[layer]


def gene_column(adata: ad.AnnData, gene: str, layer: str) -> Any:
    """Return one gene's values in ``layer`` as a 1-D array (lazy for Dask layers).

    Only the column block holding the gene is read; Dask blocks may be dense or scipy
    sparse.
    """
    x = layer_array(adata, layer)
    j = int(adata.var_names.get_loc(gene))
    if isinstance(x, da.Array):
        bounds = np.cumsum((0,) + x.chunks[1])
        b = int(np.searchsorted(bounds, j, side="right") - 1)
        block = x.blocks[:, b]
        return block.map_blocks(
            _dense_column, j=j - int(bounds[b]), drop_axis=1, dtype=np.float64, meta=np.empty(0)
        )
    return _dense_column(x, j)


def _dense_column(block: Any, j: int) -> np.ndarray:
    col = block[:, [j]]
    col = col.toarray() if hasattr(col, "toarray") else np.asarray(col)
    return np.asarray(col, dtype=np.float64).ravel()


def color_vector(adata: ad.AnnData, color: str, layer: str) -> Any:
    """Return the values that colour the cells: an obs column or one gene in ``layer``.

    Raises
    ------
    KeyError
        If ``color`` is neither an obs column nor a gene.
    """
    if color in adata.obs.columns:
        return adata.obs[color]
    if color in adata.var_names:
        return gene_column(adata, color, layer)
    raise MissingKeyError(
        f"color {color!r} is neither a column of adata.obs nor a gene in "
        f"adata.var_names (obs columns: {list(adata.obs.columns)[:12]} ...)"
    )


def gather(items: dict[str, Any]) -> dict[str, Any]:
    """Materialise every item, computing all Dask ones in a single pass.

    pandas objects are kept as they are; everything else becomes a numpy array.
    """
    lazy = {k: v for k, v in items.items() if isinstance(v, da.Array)}
    out = dict(items)
    if lazy:
        out.update(zip(lazy, compute(*lazy.values(), desc="plot data"), strict=True))
    return {k: v if isinstance(v, pd.Series | pd.DataFrame) else _dense(v) for k, v in out.items()}


def _dense(v: Any) -> np.ndarray:
    v = v.toarray() if hasattr(v, "toarray") else v
    return np.asarray(v)


def pick_cells(
    n: int,
    cell_inds: Any,
    cap: int | None = None,
    random_state: int = 0,
    obs_names: pd.Index | None = None,
) -> np.ndarray:
    """Indices of the cells that get an arrow (sorted), following dynamo's ``cell_inds``.

    ``'all'`` (capped at ``cap`` by a seeded uniform sample), ``'random'`` (1,000 cells),
    an int (that many cells, seeded) or a list of positions or cell names.

    Raises
    ------
    ValueError
        If ``cell_inds`` is none of those.
    """
    rng = np.random.default_rng(random_state)
    if isinstance(cell_inds, str) and cell_inds in ("all", "random"):
        k = n if cell_inds == "all" else 1000
        k = min(k, n, cap or n)
        return np.arange(n) if k == n else np.sort(rng.choice(n, size=k, replace=False))
    if isinstance(cell_inds, int | np.integer):
        return np.sort(rng.choice(n, size=min(int(cell_inds), n), replace=False))
    if (
        isinstance(cell_inds, Sequence | np.ndarray)
        and not isinstance(cell_inds, str)
        and len(cell_inds) > 0
    ):
        if isinstance(cell_inds[0], str):
            idx = obs_names.get_indexer(list(cell_inds))
            if (idx < 0).any():
                unknown = np.asarray(cell_inds)[idx < 0][:5]
                raise InputError(f"cell_inds names unknown cells: {unknown}")
            return np.sort(idx)
        return np.sort(np.asarray(cell_inds, dtype=np.int64))
    raise InputError(
        "cell_inds must be 'all', 'random', a number of cells or a list of "
        f"cells, not {cell_inds!r}"
    )


def is_categorical(values: Any) -> bool:
    """Whether colour values are labels (categorical, strings, booleans) rather than numbers."""
    if isinstance(values, pd.Series):
        return (
            not pd.api.types.is_numeric_dtype(values)
            or isinstance(values.dtype, pd.CategoricalDtype)
            or pd.api.types.is_bool_dtype(values)
        )
    return not np.issubdtype(np.asarray(values).dtype, np.number)
