"""Dask graphs for embeddings: UMAP fitted once and applied per row block.

The fitted UMAP model is one object in the graph, shared by every transform task (one key,
so a distributed scheduler ships it to each worker once).
"""

from __future__ import annotations

import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np

from .._core.compute import compute, share
from .blocks import as_rows, sum_rows


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
            dask.delayed(_transform_block)(b, pos[s : s + c], model_d, emb_d),
            shape=(c, n_dim),
            dtype=np.float32,
        )
        for b, s, c in zip(xr.to_delayed().ravel(), starts, xr.chunks[0], strict=True)
    ]
    return da.concatenate(blocks, axis=0)


def _transform_block(x: Any, pos: np.ndarray, model: Any, emb_fit: np.ndarray) -> np.ndarray:
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)
    out = np.empty((x.shape[0], emb_fit.shape[1]), dtype=np.float32)
    fitted = pos >= 0
    out[fitted] = emb_fit[pos[fitted]]
    if (~fitted).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[~fitted] = model.transform(x[~fitted])
    return out


def _moments(x: Any, log: bool) -> dict[str, np.ndarray]:
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)
    x = np.log1p(x) if log else x
    return {"n": np.array([x.shape[0]], dtype=np.float64), "s": x.sum(0), "ss": x.T @ x}


def pca_fit(x: Any, n_components: int, log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact PCA of (``log1p`` of) ``x`` from one pass over row blocks.

    Returns
    -------
    components, mean
        ``(n_features, n_components)`` orthonormal loadings (sign fixed so that the largest
        entry of each is positive) and the feature means.
    """
    m = compute(sum_rows(_moments, x, log=log), desc="PCA statistics")[0]
    n = m["n"][0]
    mean = m["s"] / n
    cov = (m["ss"] - n * np.outer(mean, mean)) / max(n - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    comps = vecs[:, np.argsort(vals)[::-1][:n_components]]
    signs = np.sign(comps[np.abs(comps).argmax(0), np.arange(comps.shape[1])])
    return comps * np.where(signs == 0, 1, signs), mean


def _pca_block(
    x: Any, v: Any, comps: np.ndarray, mean: np.ndarray, log: bool, part: str
) -> np.ndarray:
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)
    f = np.log1p if log else (lambda a: a)
    xp = (f(x) - mean) @ comps
    if part == "x":
        return xp
    v = np.asarray(v.toarray() if hasattr(v, "toarray") else v, dtype=np.float64)
    future = np.maximum(x + v, 0.0) if log else x + v  # expression cannot go below zero
    return (f(future) - mean) @ comps - xp


def pca_project(
    x: Any, v: Any, comps: np.ndarray, mean: np.ndarray, log: bool = False
) -> tuple[da.Array, da.Array]:
    """Lazy PCA coordinates of ``x`` and the displacement of ``x + v`` in that basis.

    With ``log``, ``x + v`` is clipped at 0 before ``log1p`` (a velocity step cannot make
    expression negative, and ``log1p`` of values below -1 is undefined).
    """
    from .blocks import map_rows

    k = comps.shape[1]
    xp = map_rows(
        _pca_block, x, v, n_cols=k, dtype=np.float64, comps=comps, mean=mean, log=log, part="x"
    )
    vp = map_rows(
        _pca_block, x, v, n_cols=k, dtype=np.float64, comps=comps, mean=mean, log=log, part="v"
    )
    return xp, vp
