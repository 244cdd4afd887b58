"""Gene-set scores of cells and growth rates (dynamo's ``score_cells``, ``cell_growth_rate``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import neighbors as gn
from ..graph.blocks import map_rows
from ..io import commit
from ..kernels import score as ksc
from ._data import dynamo_case, layer_data
from .neighbors import embedding


def _row_mean(block: Any) -> np.ndarray:
    return np.asarray(block.mean(1), dtype=np.float64).reshape(-1, 1)


def _scores(adata, genes, layer, basis, n_neighbors, beta, iteration, metric, metric_kwds, seed):
    if basis is None and keys.X_PCA not in adata.obsm:
        raise MissingKeyError("obsm['X_pca'] is missing: run dyn.pp.pca (or pass basis=...)")
    if basis is not None and f"X_{basis}" not in adata.obsm:
        raise MissingKeyError(f"obsm['X_{basis}'] is missing: compute that embedding first")
    if genes is None:
        if keys.USE_FOR_PCA not in adata.var:
            raise MissingKeyError("var['use_for_pca'] is missing: pass genes=[...]")
        names = list(adata.var_names[np.asarray(adata.var[keys.USE_FOR_PCA], dtype=bool)])
    else:
        names = dynamo_case(adata, genes)
    if not 2 <= n_neighbors <= adata.n_obs:
        raise InputError(f"n_neighbors must be between 2 and the number of cells ({adata.n_obs})")
    cols = adata.var_names.get_indexer(names)
    x = layer_data(adata, layer, cols)
    mean = map_rows(_row_mean, x, n_cols=1, dtype=np.float64)[:, 0]
    (mean,) = compute(mean, desc="gene-set means")
    coords = embedding(adata, "pca" if basis is None else basis)
    method = gn.choose_method(coords.shape[0], coords.shape[1], None)
    idx, _ = gn.knn(coords, n_neighbors, method, metric=metric, metric_kwds=metric_kwds, seed=seed)
    return ksc.smooth_score(mean, idx, beta, iteration), names


def score_cells(
    adata: ad.AnnData,
    genes: Sequence[str] | None = None,
    layer: str | None = None,
    *,
    basis: str | None = None,
    n_neighbors: int = 30,
    beta: float = 0.1,
    iteration: int = 5,
    metric: str | Callable = "euclidean",
    metric_kwds: dict | None = None,
    cores: int = 1,
    seed: int = 19491001,
    return_score: bool = True,
) -> np.ndarray | None:
    """Score cells by the mean expression of a gene set, smoothed over their neighbours.

    Each cell's mean over ``genes`` (a pass over row blocks) is smoothed ``iteration`` times
    over its ``n_neighbors`` nearest cells (itself included) in ``X_<basis>``:
    ``beta * own + (1 - beta) * mean of the others``, updating in cell order as dynamo does.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    genes
        Gene set, matched in var_names' case (default: ``var['use_for_pca']`` genes).
    layer
        Layer to read (dynamo's log-normalised X when ``None``).
    basis
        Embedding for the neighbours (``X_pca`` when ``None``).
    n_neighbors, beta, iteration
        Neighbours (self included), weight of the cell itself, smoothing sweeps.
    metric, metric_kwds
        Distance of the neighbour search.
    cores
        Ignored (the active Dask scheduler decides).
    seed
        Seed of the approximate neighbour search (above 5,000 cells).
    return_score
        Return the scores instead of writing them.

    Returns
    -------
    numpy.ndarray or None
        The smoothed score per cell when ``return_score``.

    Writes
    ------
    obs['cell_score'], uns['score_cells']
        When not ``return_score``: the scores and ``smoothed_score``, ``genes``, ``layer``,
        ``basis``.

    Raises
    ------
    dynadask.MissingKeyError
        Missing embedding, ``use_for_pca`` or layer.
    dynadask.InputError
        No gene of the set in var_names.
    """
    del cores
    score, names = _scores(
        adata, genes, layer, basis, n_neighbors, beta, iteration, metric, metric_kwds, seed
    )
    if return_score:
        return score
    record = {
        "smoothed_score": score,
        "genes": np.asarray(names, dtype=object),
        "layer": "None" if layer is None else layer,
        "basis": "None" if basis is None else basis,
    }
    commit(adata, "score_cells", obs={"cell_score": score}, uns={"score_cells": record})
    return None


def cell_growth_rate(
    adata: ad.AnnData,
    group: str,
    source: Any = None,
    *,
    target: Any = None,
    L0: float = 0.3,  # noqa: N803 - dynamo's name
    L: float = 1.2,  # noqa: N803 - dynamo's name
    k: float = 1e-3,
    birth_genes: Sequence[str] | None = None,
    death_genes: Sequence[str] | None = None,
    clone_column: str | None = None,
    **kwargs: Any,
) -> ad.AnnData:
    """Growth rate of the ``source`` cells, from clones or from birth / death gene scores.

    With ``clone_column``, ``source`` and ``target``: each source cell's rate is
    ``(target cells of its clone + 1) / (source cells of its clone + 1)``. Otherwise the
    cells are scored on the birth and death gene sets (:func:`score_cells`, ``kwargs``) and
    each source cell gets ``b - d`` with ``b = L0 + L / (1 + exp(-kb * birth))``,
    ``kb = log(k) / min(birth)`` (and the same for death). dynamo downloads KEGG cell-cycle
    and apoptosis lists when no genes are given; dynadask asks for them instead.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    group
        obs column of collection times (or groups).
    source, target
        Values of ``group`` for the start and end cells.
    L0, L, k
        Base rate, maximum rate, steepness of the logistic curve.
    birth_genes, death_genes
        Gene sets of proliferation and apoptosis.
    clone_column
        obs column of clone ids.
    **kwargs
        Passed to :func:`score_cells`.

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    obs['growth_rate'], obs['birth_score'], obs['death_score']
        Rates of the source cells (NaN for the others); the scores when computed from genes.

    Raises
    ------
    dynadask.InputError
        Missing columns or values, or no gene sets without clone information.
    """
    if group not in adata.obs:
        raise MissingKeyError(f"obs[{group!r}] is missing: pass the column of collection times")
    labels = adata.obs[group].to_numpy()
    src = labels == source
    if not src.any():
        raise InputError(f"no cell has obs[{group!r}] == {source!r}: pass an existing source")
    obs: dict[str, np.ndarray] = {}
    if all(v is not None for v in (clone_column, source, target)):
        rates = _clone_rates(adata.obs, group, source, target, clone_column, src)
    else:
        if birth_genes is None or death_genes is None:
            raise InputError(
                "cell_growth_rate without clone information needs birth_genes and death_genes "
                "(e.g. KEGG cell cycle and apoptosis lists)"
            )
        birth = score_cells(adata, birth_genes, **kwargs)
        death = score_cells(adata, death_genes, **kwargs)
        obs = {"birth_score": birth, "death_score": death}
        rates = _logistic(birth[src], np.min(birth), L0, L, k) - _logistic(
            death[src], np.min(death), L0, L, k
        )
    growth = np.full(adata.n_obs, np.nan)
    growth[src] = rates
    commit(adata, "cell_growth_rate", obs={**obs, "growth_rate": growth})
    return adata


def _logistic(score: np.ndarray, lowest: float, L0: float, L: float, k: float) -> np.ndarray:  # noqa: N803
    with np.errstate(divide="ignore", over="ignore"):
        rate = np.log(k) / lowest
        return L0 + L / (1 + np.exp(-rate * score))


def _clone_rates(obs: pd.DataFrame, group, source, target, clone, src) -> np.ndarray:
    if clone not in obs:
        raise MissingKeyError(f"obs[{clone!r}] is missing: pass the column of clone ids")
    if not (obs[group] == target).any():
        raise InputError(f"no cell has obs[{group!r}] == {target!r}: pass an existing target")
    counts = obs.groupby(clone, observed=True)[group].value_counts().unstack().fillna(0)
    clones = obs.loc[src, clone].to_numpy()
    n_src = counts.loc[clones, source].to_numpy() + 1
    n_tgt = counts.loc[clones, target].to_numpy() + 1
    return n_tgt / n_src
