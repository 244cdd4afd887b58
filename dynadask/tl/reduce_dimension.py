"""``dyn.tl.reduceDimension``: UMAP fitted once (on a sample when large), applied per block."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from .._core.model import ModelRecord, read, with_record
from .._core.validate import enough_cells
from ..graph import embedding as ge
from ..graph import model as gm
from ..graph import pca as gpca
from ..graph.blocks import as_rows, map_rows, sum_rows, take_columns
from ..io import commit
from .neighbors import neighbors

UMAP_DEFAULTS: dict[str, Any] = {
    "metric": "euclidean",
    "min_dist": 0.5,
    "spread": 1.0,
    "max_iter": None,
    "alpha": 1.0,
    "gamma": 1.0,
    "negative_sample_rate": 5,
    "init_pos": "spectral",
    "random_state": 0,
    "transform_seed": 42,
    "verbose": False,
}
_UMAP_NAMES = {
    "max_iter": "n_epochs",
    "alpha": "learning_rate",
    "gamma": "repulsion_strength",
    "init_pos": "init",
}


def reduceDimension(  # noqa: N802 - dynamo's name
    adata: ad.AnnData,
    X_data: Any = None,
    genes: list[str] | None = None,
    *,
    layer: str | None = None,
    basis: str | None = "pca",
    dims: list[int] | None = None,
    n_pca_components: int = 30,
    n_components: int = 2,
    n_neighbors: int = 30,
    reduction_method: str = "umap",
    embedding_key: str | None = None,
    enforce: bool = False,
    max_fit_cells: int | None = 50_000,
    n_fit_cells: int = 30_000,
    cores: int | None = None,
    copy: bool = False,
    **kwargs: Any,
) -> ad.AnnData | None:
    """Embed the cells in ``n_components`` dimensions with UMAP.

    The model is fitted on all cells when there are at most ``max_fit_cells``, else on a
    seeded uniform sample of ``n_fit_cells``; the other cells are then placed with the
    fitted model's ``transform``, row block by row block, in parallel (one shared model).
    Skipped when ``obsm['X_umap']`` exists, unless ``enforce``.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_pca']`` (or ``obsm['<layer>_pca']``).
    X_data
        Cells x features to embed instead of the PCA coordinates.
    genes
        Embed a PCA of ``X`` (or ``layer``) restricted to these genes instead.
    layer
        Use ``obsm['<layer>_pca']`` and write ``obsm['<layer>_umap']``.
    basis
        Input space: ``'pca'`` (its first ``n_pca_components`` columns, all of them when
        there are fewer, or ``dims``).
    dims
        Columns of the input space to use.
    n_pca_components, n_components, n_neighbors
        Input dimensions, output dimensions, UMAP neighbours.
    reduction_method
        ``'umap'``.
    embedding_key
        Output key (default ``'X_umap'`` or ``'<layer>_umap'``).
    enforce
        Recompute even when the embedding exists.
    max_fit_cells, n_fit_cells
        Fit on every cell up to ``max_fit_cells`` cells (``None``: always), else on a sample
        of ``n_fit_cells``.
    cores
        Ignored (the active Dask scheduler decides); accepted for dynamo compatibility.
    copy
        Work on and return a copy.
    **kwargs
        UMAP options in dynamo's names: ``min_dist`` (0.5), ``spread``, ``max_iter``,
        ``alpha``, ``gamma``, ``negative_sample_rate``, ``init_pos``, ``random_state`` (0),
        ``metric``, ``transform_seed``, ``verbose``.

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy``.

    Writes
    ------
    obsm['X_umap']
        The embedding (float32).
    obsp['distances'], obsp['connectivities'], uns['neighbors']
        The kNN graph of ``obsm['X_pca']`` (:func:`dynadask.tl.neighbors`, default settings)
        when ``uns['neighbors']`` is missing, as dynamo leaves it for ``cell_velocities``.
    uns['umap_fit']
        ``umap_kwargs``, ``n_pca_components``, ``fit_idx`` (cells the model was fitted on),
        ``X_fit`` (their input coordinates) and ``embedding`` (their fitted coordinates),
        from which the model is rebuilt without refitting (:func:`load_umap`).
    uns['dynadask_models'][<embedding key>]
        The fitted-model record (kind ``'umap'``): umap-learn's settings, the fit cells
        (``'all'``, or ``index:fit_idx`` with the sample's seed) and the paths of the arrays
        above.

    Raises
    ------
    ValueError
        Missing PCA coordinates (run ``dyn.pp.pca``), unknown basis, unsupported method or
        UMAP option.
    """
    if cores not in (None, 1):
        warnings.warn(
            "cores is ignored: dynadask computes on the active Dask scheduler", stacklevel=2
        )
    adata = adata.copy() if copy else adata
    if reduction_method != "umap":
        raise InputError(
            f"reduction_method {reduction_method!r} is not available: dynadask embeds with 'umap'"
        )
    key = embedding_key or (f"{layer}_umap" if layer else "X_umap")
    if key in adata.obsm and not enforce:
        warnings.warn(f"obsm[{key!r}] exists: skipped (enforce=True recomputes it)", stacklevel=2)
    else:
        x = (
            X_data
            if X_data is not None
            else _input(adata, genes, layer, basis, dims, n_pca_components)
        )
        enough_cells(int(x.shape[0]), n_neighbors)
        umap_kwargs = umap_options(n_components, n_neighbors, kwargs)
        emb, fit, record = _embed(x, umap_kwargs, max_fit_cells, n_fit_cells)
        fit["n_pca_components"] = int(x.shape[1])
        record = replace(
            record,
            name=key,
            inputs=_inputs_note(X_data, genes, layer, basis, dims, int(x.shape[1])),
        )
        uns = {"umap_fit": fit, keys.MODELS: _models(adata.uns, record)}
        commit(adata, "reduceDimension", obsm={key: emb}, uns=uns)
    if "neighbors" not in adata.uns:  # dynamo leaves the kNN graph here for later steps
        neighbors(adata)
    return adata if copy else None


def umap_options(n_components: int, n_neighbors: int, kwargs: dict[str, Any]) -> dict:
    """UMAP settings as dynamo sets them, updated with ``kwargs``."""
    unknown = sorted(set(kwargs) - set(UMAP_DEFAULTS))
    if unknown:
        raise InputError(f"unknown UMAP option(s) {unknown}: use {sorted(UMAP_DEFAULTS)}")
    return {**UMAP_DEFAULTS, **kwargs, "n_components": n_components, "n_neighbors": n_neighbors}


def _umap_args(umap_kwargs: dict[str, Any], n_fit: int) -> dict[str, Any]:
    args = {_UMAP_NAMES.get(k, k): v for k, v in umap_kwargs.items()}
    if args["n_epochs"] is None:
        args["n_epochs"] = 500 if n_fit <= 10_000 else 200
    return args


def _input(adata, genes, layer, basis, dims, n_pcs) -> Any:
    if genes is not None:
        return _gene_pca(adata, genes, layer, n_pcs)
    prefix = f"{layer}_" if layer else "X_"
    name = basis if basis is None or basis.startswith(prefix) else prefix + basis
    if name != prefix + "pca":
        raise InputError(f"unknown basis {basis!r}: reduceDimension embeds from 'pca'")
    if name not in adata.obsm:
        raise MissingKeyError(
            f"obsm[{name!r}] is missing: run dyn.pp.pca(adata) (or dyn.pp.recipe_monocle) first"
        )
    x = adata.obsm[name]
    if dims is None:  # as dynamo: the first n_pca_components columns, or all there are
        return x[:, : min(n_pcs, x.shape[1])]
    if max(dims) >= x.shape[1]:
        raise InputError(
            f"dims {list(dims)} ask for component {max(dims)} but obsm[{name!r}] has "
            f"{x.shape[1]}: pick dims below {x.shape[1]} or rerun dyn.pp.pca with "
            f"n_pca_components={max(dims) + 1}"
        )
    return x[:, list(dims)]


def _gene_pca(adata, genes, layer, n_pcs) -> Any:
    mask = adata.var_names.isin(list(genes))
    if not mask.any():
        raise InputError("none of the genes is in adata.var_names")
    x = (adata.X if layer is None else adata.layers[layer])[:, np.flatnonzero(mask)]
    mean, comps, _, _ = gpca.fit(x, min(n_pcs, int(mask.sum()) - 1), log=False)
    return gpca.project(x, None, None, mean, comps, log=False, dtype=np.float64)


def _embed(
    x: Any, umap_kwargs: dict, max_fit: int | None, n_fit: int
) -> tuple[Any, dict, ModelRecord]:
    n = x.shape[0]
    seed = umap_kwargs["random_state"]
    idx = ge.fit_cells(n, max_fit, n_fit, seed)
    x_fit = ge.take_rows(x, idx)
    args = _umap_args(umap_kwargs, x_fit.shape[0])
    model = gm.UMAPModel(ge.fit_umap(x_fit, args))
    layout = np.asarray(model.model.embedding_, dtype=np.float32)
    sampled = idx is not None
    if not sampled:
        emb = layout
        idx = np.arange(n)
    else:
        emb = gm.apply_blocks(model, x, fitted=idx)
    fit = {
        "umap_kwargs": {k: ("None" if v is None else v) for k, v in umap_kwargs.items()},
        "fit_idx": idx.astype(np.int64),
        "X_fit": x_fit,
        "embedding": layout,
    }
    record = ModelRecord(
        name="X_umap",
        kind="umap",
        inputs="",
        n_obs=n,
        n_fit=int(x_fit.shape[0]),
        cells="index:fit_idx" if sampled else "all",
        seed=None if seed is None or not sampled else int(seed),
        params=args,
        arrays={k: f"umap_fit/{k}" for k in ("X_fit", "embedding", "fit_idx")},
    )
    return emb, fit, record


def _inputs_note(X_data, genes, layer, basis, dims, n_cols: int) -> str:
    """What the UMAP was fitted on, for its record."""
    if X_data is not None:
        return f"X_data ({n_cols} columns)"
    if genes is not None:
        return f"PCA of {'X' if layer is None else 'layers/' + layer} on {len(genes)} genes"
    name = f"{layer}_pca" if layer else keys.basis_key(basis or "pca")
    cols = f"{list(dims)}" if dims is not None else f":{n_cols}"
    return f"obsm/{name}[:, {cols}]"


def _models(uns: Any, record: ModelRecord) -> dict:
    """uns['dynadask_models'] with ``record``, without other records on ``uns['umap_fit']``."""
    models = with_record(uns, record)
    return {k: v for k, v in models.items() if k == record.name or not _on_umap_fit(v)}


def _on_umap_fit(entry: Any) -> bool:
    return str(dict(entry.get("arrays", {})).get("X_fit", "")).startswith("umap_fit/")


def load_umap(adata: ad.AnnData, key: str = "X_umap") -> tuple[gm.UMAPModel, ModelRecord]:
    """The UMAP model behind ``obsm[key]``, rebuilt from its record without refitting.

    The record ``uns['dynadask_models'][key]`` names the fit inputs and layout in
    ``uns['umap_fit']``; :func:`dynadask.graph.embedding.load_umap` rebuilds the model, whose
    ``transform`` equals that of the model fitted by :func:`reduceDimension`.
    """
    record = read(adata.uns, key)
    if record is None or record.kind != "umap":
        raise MissingKeyError(
            f"no UMAP model record for obsm[{key!r}] (uns[{keys.MODELS!r}][{key!r}]): run "
            "dyn.tl.reduceDimension(adata, enforce=True) first"
        )
    model = gm.load(record, adata.uns)
    assert isinstance(model, gm.UMAPModel)
    return model, record


def umap_transform_velocity(adata: ad.AnnData, emb: Any, vkey: str | None) -> np.ndarray:
    """Embedding velocity as ``umap.transform(pca(x + v)) - umap(x)`` (dynamo's 'transform').

    ``x`` is ``X`` over ``var['use_for_pca']``, projected with ``uns['PCs']`` around the mean
    of ``x + v``; NaN velocities count as 0.
    """
    model, _ = load_umap(adata)
    fit = adata.uns["umap_fit"]
    vkey = vkey or keys.VELOCITY_S
    if vkey not in adata.layers or "PCs" not in adata.uns:
        raise InputError(
            f"layers[{vkey!r}] and uns['PCs'] are needed: run dyn.pp.pca and dyn.tl.dynamics first"
        )
    genes = np.flatnonzero(adata.var[keys.USE_FOR_PCA].to_numpy(bool))
    pcs = np.asarray(adata.uns["PCs"], dtype=np.float64)[:, : int(fit["n_pca_components"])]
    x, v = take_columns(adata.X, genes), take_columns(adata.layers[vkey], genes)
    total = compute(sum_rows(_sum_xv, x, v), desc="mean of x + v")[0]
    mean = total[1:] / total[0]
    y = map_rows(_project_xv, x, v, n_cols=pcs.shape[1], dtype=np.float32, pcs=pcs, mean=mean)
    moved = gm.apply_blocks(model, y)
    return compute(moved - as_rows(emb)[:, : moved.shape[1]], desc="umap transform")[0]


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def _sum_xv(x: Any, v: Any) -> np.ndarray:
    xv = _dense(x) + np.nan_to_num(_dense(v))
    return np.concatenate([[xv.shape[0]], xv.sum(0)])


def _project_xv(x: Any, v: Any, pcs: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return (_dense(x) + np.nan_to_num(_dense(v)) - mean) @ pcs
