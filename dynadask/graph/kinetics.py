"""Dask graphs for kinetic estimation: per-gene reductions over row blocks, lazy velocities.

Each builder returns a lazy object (a ``Delayed`` of small per-gene arrays, or a Dask array
with the row chunks of its inputs); nothing is computed here. The caller computes the small
per-gene summaries of one pass, derives the next pass's settings from them (score scales,
quantile windows, thresholds) and finally builds the velocities from the estimates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np

from .._core.compute import share
from ..kernels import kinetics as kk
from .blocks import align_rows, map_rows, sum_rows


def reduce_rows(
    fn: Callable[..., Any],
    combine: Callable[..., Any],
    *arrays: Any,
    split_every: int = 8,
    **kwargs: Any,
) -> Any:
    """Combine ``fn`` over aligned row blocks with ``combine`` (a tree), lazily."""
    xs = align_rows(*arrays)
    per_block = [x.to_delayed().ravel() for x in xs]
    parts = [dask.delayed(fn, pure=True)(*b, **kwargs) for b in zip(*per_block, strict=True)]
    while len(parts) > 1:
        parts = [
            dask.delayed(combine, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]


def _codes_kernel(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(s, u, codes, **kwargs):
        return fn(s, u, np.asarray(codes).ravel(), **kwargs)

    run.__name__ = getattr(fn, "__name__", "kinetics")
    return run


def extent(s: Any, u: Any, codes: np.ndarray, n_strata: int) -> Any:
    """Lazy per-stratum, per-gene minimum and maximum of ``s`` and ``u``."""
    return reduce_rows(_codes_kernel(kk.extent), kk.combine_extent, s, u, codes, n_strata=n_strata)


def score_histogram(s: Any, u: Any, codes: np.ndarray, grid: Mapping[str, Any], n_bins: int) -> Any:
    """Lazy histogram of the extremeness score (``n_strata x n_genes x n_bins``)."""
    return sum_rows(
        _codes_kernel(kk.score_histogram),
        s,
        u,
        codes,
        scale=grid["scale"],
        lo=grid["lo"],
        width=grid["width"],
        n_bins=n_bins,
    )


def collect_in_bins(
    s: Any,
    u: Any,
    codes: np.ndarray,
    grid: Mapping[str, Any],
    n_bins: int,
    windows: Sequence[tuple[np.ndarray, np.ndarray]],
) -> Any:
    """Lazy distinct score values inside the quantile windows (see the kernel)."""
    return reduce_rows(
        _codes_kernel(kk.collect_in_bins),
        kk.combine_collected,
        s,
        u,
        codes,
        scale=grid["scale"],
        lo=grid["lo"],
        width=grid["width"],
        n_bins=n_bins,
        windows=list(windows),
    )


def _sums_kernel(*blocks: Any, names: Sequence[str], **kwargs: Any) -> dict[str, np.ndarray]:
    *layers, codes = blocks
    return kk.product_sums(
        dict(zip(names, layers, strict=True)), np.asarray(codes).ravel(), **kwargs
    )


def product_sums(
    layers: Mapping[str, Any],
    codes: np.ndarray,
    n_strata: int,
    terms: Mapping[str, tuple[str, ...]],
    *,
    extreme: Mapping[str, Any] | None = None,
    derived: Mapping[str, Any] | None = None,
) -> Any:
    """Lazy per-stratum sums of products of layers (see :func:`kernels.kinetics.product_sums`)."""
    names = list(layers)
    return sum_rows(
        _sums_kernel,
        *layers.values(),
        codes,
        names=names,
        n_strata=n_strata,
        terms=dict(terms),
        extreme=extreme,
        derived=derived,
    )


def _window_kernel(*blocks: Any, names: Sequence[str], **kwargs: Any) -> dict[str, Any]:
    *layers, codes = blocks
    return kk.window_sums(
        dict(zip(names, layers, strict=True)), np.asarray(codes).ravel(), **kwargs
    )


def window_sums(
    layers: Mapping[str, Any],
    codes: np.ndarray,
    n_strata: int,
    terms: Mapping[str, tuple[str, ...]],
    *,
    window: Mapping[str, Any],
    derived: Mapping[str, Any] | None = None,
) -> Any:
    """Lazy product sums, window cells pending (:func:`kernels.kinetics.window_sums`)."""
    names = list(layers)
    return reduce_rows(
        _window_kernel,
        kk.combine_window_sums,
        *layers.values(),
        codes,
        names=names,
        n_strata=n_strata,
        terms=dict(terms),
        window=dict(window),
        derived=derived,
    )


def _combination_kernel(
    *blocks: Any, coefs: np.ndarray, const: np.ndarray | None, cols: np.ndarray | None
) -> np.ndarray:
    *layers, codes = blocks
    codes = np.asarray(codes, dtype=np.int64).ravel()
    n, width = codes.size, coefs.shape[-1]
    out = np.empty((n, width), dtype=np.float32)
    cols = np.arange(width, dtype=np.int64) if cols is None else np.asarray(cols, np.int64)
    const = np.zeros((0, width)) if const is None else np.asarray(const, dtype=np.float64)
    for start, stop in kk.row_slices(n):
        stack = np.stack([kk.dense_rows(x, start, stop) for x in layers])
        kk.combine_rows(stack, codes[start:stop], coefs, const, cols, out[start:stop])
    return out


def linear_combination(
    layers: Sequence[Any],
    codes: np.ndarray,
    coefs: np.ndarray,
    const: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> Any:
    """Lazy ``sum_j coefs[j][stratum] * layer_j + const[stratum]`` per cell (e.g. velocities).

    Parameters
    ----------
    layers
        Cells x genes arrays (any type), all with the same genes.
    codes
        Stratum of each cell (-1: the row is 0).
    coefs
        ``n_layers x n_strata x width`` per-stratum, per-gene coefficients.
    const
        ``n_strata x width`` per-stratum constant (or None).
    cols
        Columns of the layers to use (``width`` of them); all when None.

    Returns
    -------
    dask.array.Array
        ``n_cells x width`` float32, row chunks of the first layer.
    """
    coefs = np.asarray(coefs, dtype=np.float64)
    return map_rows(
        _combination_kernel,
        *layers,
        np.asarray(codes),
        n_cols=coefs.shape[-1],
        dtype=np.float32,
        coefs=coefs,
        const=const,
        cols=cols,
    )


@dataclass(frozen=True)
class SharedColumns:
    """``cells x genes`` arrays handed to the workers once (:func:`share_columns`)."""

    handles: list
    n_genes: int


def share_columns(columns: Sequence[np.ndarray]) -> SharedColumns:
    """Hand ``cells x genes`` arrays to the workers once, for several :func:`column_blocks`.

    Each is stored genes x cells (:func:`~dynadask._core.compute.share`), so that a task
    reads only its genes.
    """
    handles = [share([np.ascontiguousarray(np.asarray(c).T)])[0] for c in columns]
    return SharedColumns(handles, int(columns[0].shape[1]))


def column_blocks(
    kernel: Callable[..., np.ndarray],
    columns: Sequence[np.ndarray] | SharedColumns,
    vectors: Sequence[np.ndarray],
    per_task: int,
    **kwargs: Any,
) -> Any:
    """Lazy ``kernel`` over blocks of genes, joined along the last axis (per-gene fits).

    Parameters
    ----------
    kernel
        ``kernel(*column_blocks, *vector_blocks, **kwargs) -> (..., genes_in_block)``.
    columns
        Small in-memory ``cells x genes`` arrays (e.g. a sample of cells), cut by columns,
        or the same already shared (:func:`share_columns`, for repeated fits). Each goes to
        the workers once, not inside the graph: 2,000 cells x 1,600 genes are 50 MiB a pair.
    vectors
        Per-gene vectors, cut alike.
    per_task
        Genes per task.
    """
    cols = columns if isinstance(columns, SharedColumns) else share_columns(columns)
    n, shared = cols.n_genes, cols.handles
    step = max(1, int(per_task))
    # the task keys from one token of the whole call: hashing a numba kernel takes about
    # 20 ms, once per task it was 2-3 s of the client's time per call at 1,600 genes
    token = dask.base.tokenize(kernel, step, shared, [*vectors], kwargs)
    parts = [
        dask.delayed(_column_block)(
            kernel,
            a,
            step,
            shared,
            [np.ascontiguousarray(v[a : a + step]) for v in vectors],
            kwargs,
            dask_key_name=f"column-block-{token}-{a}",
        )
        for a in range(0, n, step)
    ]
    return dask.delayed(np.concatenate, pure=True)(parts, axis=-1)


def _column_block(kernel, start, step, genes_by_cells, vectors, kwargs) -> np.ndarray:
    cols = [np.ascontiguousarray(x[start : start + step].T) for x in genes_by_cells]
    return kernel(*cols, *vectors, **kwargs)
