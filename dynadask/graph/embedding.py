"""Dask graphs for embeddings: UMAP fitted once and applied per row block.

The fitted UMAP model is one object in the graph, shared by every transform task (one key,
so a distributed scheduler ships it to each worker once).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
import dask.array as da
import numpy as np

from .._core.compute import compute, share
from ..kernels import embedding as ek
from .blocks import as_rows


def fit_cells(
    n_cells: int, max_fit_cells: int | None, n_fit: int, random_state: int | None
) -> np.ndarray | None:
    """Cells a model is fitted on: all (``None``) up to ``max_fit_cells``, else a sample.

    The sample is uniform without replacement (seeded), so every population is represented
    in proportion to its size, and returned sorted.
    """
    if max_fit_cells is None or n_cells <= max_fit_cells:
        return None
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_cells, size=min(n_fit, n_cells), replace=False))


def take_rows(x: Any, idx: np.ndarray | None) -> np.ndarray:
    """Return rows ``idx`` (all when ``None``) of any array as a dense float32 numpy array."""
    if isinstance(x, da.Array):
        x = compute(x if idx is None else x[idx], desc="gather rows")[0]
    elif idx is not None:
        x = x[idx]
    x = x.toarray() if hasattr(x, "toarray") else x
    return np.asarray(x, dtype=np.float32)


def fit_umap(x_fit: np.ndarray, umap_kwargs: dict[str, Any]) -> Any:
    """Fit umap-learn's UMAP on ``x_fit`` with ``umap_kwargs`` and return the model."""
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = umap.UMAP(**umap_kwargs).fit(x_fit)
    return model


def load_umap(umap_kwargs: dict[str, Any], x_fit: np.ndarray, embedding: np.ndarray) -> Any:
    """A fitted UMAP model rebuilt from its inputs and its stored layout, without refitting it.

    umap-learn's ``transform`` needs the fit inputs, their neighbour-search structures and
    the fitted layout. The structures are rebuilt from ``x_fit`` with the recorded settings
    (exact distances below 4,096 fit cells, else the NN-descent index, seeded by
    ``random_state``: the same structures as the original fit) by a fit that starts from
    ``embedding`` and runs no optimisation epoch; the layout is then ``embedding`` itself.
    ``transform`` of the result equals that of the originally fitted model.
    """
    import umap

    layout = np.ascontiguousarray(embedding, dtype=np.float32)
    args = {**umap_kwargs, "n_epochs": 0, "init": layout}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = umap.UMAP(**args).fit(np.asarray(x_fit, dtype=np.float32))
    model.n_epochs = umap_kwargs.get("n_epochs")  # transform runs n_epochs // 3 epochs
    model.init = umap_kwargs.get("init", "spectral")
    model.embedding_ = layout
    return model


TRANSFORM_ROWS = 20_000


def transform_rows(x: Any, model: Any, fit_idx: np.ndarray, rows: int = TRANSFORM_ROWS) -> da.Array:
    """Embed every cell with a fitted model, block by block (lazy).

    Fitted cells keep their fitted coordinates; the others go through ``model.transform``
    in blocks of ``rows`` cells counted from the first cell, whatever the input's chunks
    (UMAP's transform places a batch jointly, so fixed blocks make the result independent of
    how the input is chunked). The model is one shared object of the graph.
    """
    n = x.shape[0]
    pos = np.full(n, -1, dtype=np.int64)
    pos[fit_idx] = np.arange(len(fit_idx))
    xr = as_rows(x, rows=min(rows, max(n, 1)))
    warm = take_rows(x, np.arange(min(2, n)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.transform(warm)  # builds the search structures once, before tasks share it
    model_d, emb_d = share([model, np.asarray(model.embedding_)])
    n_dim = model.embedding_.shape[1]
    starts = np.cumsum((0,) + xr.chunks[0][:-1])
    blocks = [
        da.from_delayed(
            dask.delayed(transform_block)(b, pos[s : s + c], model_d, emb_d),
            shape=(c, n_dim),
            dtype=np.float32,
        )
        for b, s, c in zip(xr.to_delayed().ravel(), starts, xr.chunks[0], strict=True)
    ]
    return da.concatenate(blocks, axis=0)


def transform_block(x: Any, pos: np.ndarray, model: Any, emb_fit: np.ndarray) -> np.ndarray:
    """Embed one block: rows with ``pos >= 0`` take ``emb_fit[pos]``, the others ``transform``."""
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)
    out = np.empty((x.shape[0], emb_fit.shape[1]), dtype=np.float32)
    fitted = pos >= 0
    out[fitted] = emb_fit[pos[fitted]]
    if (~fitted).any():
        with warnings.catch_warnings(), compiled_start():
            warnings.simplefilter("ignore")
            out[~fitted] = model.transform(x[~fitted])
    return out


_START = {"lock": threading.Lock(), "depth": 0, "saved": None}


@contextmanager
def compiled_start() -> Iterator[None]:
    """Give umap-learn's ``transform`` a compiled start of the new points inside the block.

    The start has the same numbers, from :func:`dynadask.kernels.embedding.graph_average`
    (one compiled loop) instead of umap-learn's per-point loop over sparse row slices;
    umap-learn 0.5 looks ``init_graph_transform`` up in its module at each call, so the
    name is swapped there while any such block runs (counted, so that concurrent tasks
    share one swap) and restored after the last.
    """
    import umap.umap_ as umap_module

    with _START["lock"]:
        if _START["depth"] == 0:
            _START["saved"] = umap_module.init_graph_transform
            umap_module.init_graph_transform = ek.graph_average
        _START["depth"] += 1
    try:
        yield
    finally:
        with _START["lock"]:
            _START["depth"] -= 1
            if _START["depth"] == 0:
                umap_module.init_graph_transform = _START["saved"]
