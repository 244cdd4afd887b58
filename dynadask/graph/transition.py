"""Dask graphs for transition matrices over each cell's neighbourhood, block by block.

Each row block of cells needs the expression of its neighbours (up to ``depth`` hops along
the kNN graph). The neighbour index array (``n_cells x k``) is computed once and shared by
all tasks as one object; each block (:func:`dynadask.graph.neighbourhood.plan_blocks`)
gathers, in one task, only the rows of the expression matrix its neighbourhoods touch. No
cells x cells matrix is ever dense.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy import sparse

from .._core.compute import ScratchFile, compute, persist, scratch_folder, share
from ..kernels import embedding as ek
from ..kernels import transition as tk
from .blocks import as_rows, gather_rows
from .neighbourhood import Block, gather, plan_blocks


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def _rows(x: Any) -> np.ndarray:
    """A gathered block as a dense array in its own float type (float32 stays float32)."""
    x = x.toarray() if sparse.issparse(x) else np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _neighbourhood(
    x_union: Any, knn: np.ndarray, block: Block, depth: int, as_array: Callable = _dense
):
    rows = block.rows
    ptr, nbr = tk.recursive_neighbours(knn, rows, depth)
    x_union = as_array(x_union)
    x_self = x_union[block.local(rows)]
    return rows, ptr, nbr, block.local(nbr), x_union, x_self


def _correlation_block(x_union, v, knn, block, depth, centred, transform):
    # the kernel widens each value to float64 itself: the gathered rows stay in the
    # stored type (float32 on a store), half the memory of a float64 copy
    rows, ptr, nbr, pos, x_union, x_self = _neighbourhood(x_union, knn, block, depth, _rows)
    corr = tk.correlation_kernel(x_union, x_self, _rows(v), ptr, pos, centred, transform)
    return rows, ptr, nbr, corr


def _first_pass_block(x_union, v, knn, emb, block, opts, spill=None):
    """One block's correlations, reduced to what the two passes need.

    The projection's sums, each cell's confidence and the unnormalised weights (float32
    CSR, global columns) that the second pass rescales: written to the scratch file
    ``spill`` when given (only the sums are returned), else returned with the sums.
    """
    rows, ptr, nbr, corr = _correlation_block(x_union, v, knn, block, *opts["corr"])
    w = tk.correlation_weights(corr, ptr, nbr, rows, opts["sigma"], opts["negatives"])
    parts = ek.projection_parts(w, ptr, nbr, rows, emb)
    parts["confidence"] = tk.row_confidence(corr, ptr)
    weights = _csr(rows, ptr, nbr, w, knn.shape[0])
    if spill is None:
        return {"parts": parts, "weights": weights}
    spill.save(weights)
    return {"parts": parts}


def _parts_of(first: dict) -> dict:
    return first["parts"]


def _csr(
    rows: np.ndarray, ptr: np.ndarray, nbr: np.ndarray, values: np.ndarray, n: int
) -> sparse.csr_matrix:
    keep = values != 0
    owner = np.repeat(np.arange(len(rows)), np.diff(ptr))[keep]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(rows)))])
    return sparse.csr_matrix(
        (values[keep].astype(np.float32), nbr[keep].astype(np.int32), indptr), shape=(len(rows), n)
    )


def _row_scale(parts: dict, upper: float, sigma: float) -> np.ndarray:
    """Per row ``1 / (sum |w| + self weight)`` (0 for a row without weight)."""
    stay = tk.self_weight(parts["confidence"], upper, sigma)
    total = parts["abs_sum"] + stay
    return np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)


def _second_pass_block(weights: Any, scale: np.ndarray) -> sparse.csr_matrix:
    """The block's transition rows: its weights (or their scratch file) times ``scale``."""
    w = weights.load() if isinstance(weights, ScratchFile) else weights["weights"]
    data = (w.data.astype(np.float64) * np.repeat(scale, np.diff(w.indptr))).astype(np.float32)
    return sparse.csr_matrix((data, w.indices, w.indptr), shape=w.shape)


def _ito_block(x_union, v, knn, emb, block, opts, with_drift):
    rows, ptr, nbr, pos, x_union, x_self = _neighbourhood(x_union, knn, block, opts["depth"])
    p = tk.ito_kernel(x_union, x_self, _dense(v), ptr, pos, **opts["ito"])
    if with_drift:
        return ek.ito_drift(p, ptr, nbr, rows, emb, opts["correct_density"])
    return _csr(rows, ptr, nbr, p, knn.shape[0])


@dataclass(frozen=True)
class KernelInputs:
    """What every kernel block reads: expression, velocity, neighbours, embedding."""

    x: Any
    v: Any
    knn: np.ndarray
    emb: Any
    rows: int


def _block_args(
    inp: KernelInputs, depth: int, dtype: Any = np.float64
) -> tuple[list[Block], Callable[[], list], Any, Any]:
    # each block gathers its rows in one task from the row blocks that hold them, so a
    # worker keeps at most the (narrow) input blocks still wanted plus one block's rows
    # (``dtype=None``: in the stored type)
    blocks = plan_blocks(inp.knn, inp.rows, depth)
    x, v = as_rows(inp.x), as_rows(inp.v)
    (knn_d,) = share([inp.knn])
    emb_d = dask.delayed(np.asarray)(inp.emb) if inp.emb is not None else None

    def gathers() -> list:
        # new keys for every pass: the second pass reaches the scheduler through the CSR
        # writer's optimised graph, where a reused key would stand for another task spec
        return [(gather(x, b, dtype=dtype), gather_rows(v, b.rows, dtype=dtype)) for b in blocks]

    return blocks, gathers, knn_d, emb_d


def _stack_csr(parts: list, blocks: list[Block], n: int) -> da.Array:
    arrays = [
        da.from_delayed(
            p,
            shape=(b.stop - b.start, n),
            dtype=np.float32,
            meta=sparse.csr_matrix((0, 0), dtype=np.float32),
        )
        for p, b in zip(parts, blocks, strict=True)
    ]
    return da.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]


def correlation_transitions(
    inp: KernelInputs,
    *,
    centred: bool = True,
    transform: str = "sqrt",
    depth: int = 2,
    sigma: float = 0.1,
    negatives: str = "subtract",
    correct_density: bool = True,
) -> tuple[da.Array, np.ndarray]:
    """Correlation-kernel transition matrix (lazy) and the embedding velocity (computed).

    The first pass computes, per cell, the largest correlation and the sums the embedding
    velocity needs; after the 98th percentile of the largest correlations is known, the
    second (lazy) pass builds the normalised transition matrix in CSR row blocks.

    Returns
    -------
    transitions, velocity
        ``(n, n)`` Dask array of float32 CSR blocks; ``(n, n_dims)`` numpy velocity.
    """
    blocks, gathers, knn_d, emb_d = _block_args(inp, depth, dtype=None)
    opts = {"corr": (depth, centred, transform), "sigma": sigma, "negatives": negatives}
    # the weights of the first pass wait for the second in one scratch file per block
    # (a million cells' weights held on the workers came near their memory limit); where
    # the workers share no folder they stay in the workers' memory
    folder = scratch_folder()
    spills = [None if folder is None else ScratchFile.reserve(folder, ".npz") for _ in blocks]
    first = [
        dask.delayed(_first_pass_block)(x, v, knn_d, emb_d, b, opts, spill)
        for (x, v), b, spill in zip(gathers(), blocks, spills, strict=True)
    ]
    if folder is None:
        first = persist(*first, desc="transition kernel (correlations)")
        parts = compute(*[dask.delayed(_parts_of)(f) for f in first], desc="transition kernel")
    else:
        parts = [f["parts"] for f in compute(*first, desc="transition kernel (correlations)")]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    upper = float(np.percentile(merged["confidence"], 98))
    velocity = ek.finish_projection(
        merged, tk.self_weight(merged["confidence"], upper, sigma), correct_density
    )
    second = [
        dask.delayed(_second_pass_block)(f if spill is None else spill, _row_scale(p, upper, sigma))
        for f, spill, p in zip(first, spills, parts, strict=True)
    ]
    return _stack_csr(second, blocks, inp.knn.shape[0]), velocity


def ito_transitions(
    inp: KernelInputs,
    *,
    depth: int = 2,
    m_diff: float = 2.0,
    adaptive: bool = True,
    tol: float = 1e-7,
    correct_density: bool = True,
    scale: bool = True,
) -> tuple[da.Array, np.ndarray]:
    """Itô-kernel transition matrix (lazy, rows sum to one) and its drift (computed).

    The drift of each cell in the embedding is divided by its largest entry over all cells
    when ``scale``.
    """
    blocks, gathers, knn_d, emb_d = _block_args(inp, depth)
    opts = {
        "depth": depth,
        "ito": {"m_diff": m_diff, "adaptive": adaptive, "tol": tol},
        "correct_density": correct_density,
    }

    def build(with_drift: bool) -> list:
        return [
            dask.delayed(_ito_block)(x, v, knn_d, emb_d, b, opts, with_drift)
            for (x, v), b in zip(gathers(), blocks, strict=True)
        ]

    drift = np.vstack(compute(*build(True), desc="Ito kernel drift"))
    if scale and drift.size and drift.max() != 0:
        drift = drift / drift.max()
    return _stack_csr(build(False), blocks, inp.knn.shape[0]), drift


def velocity_from_transitions(
    transitions: Any, emb: Any, correct_density: bool = True
) -> np.ndarray:
    """Embedding velocity from an existing transition matrix (any array type), computed."""
    t = as_rows(transitions)
    emb_d = dask.delayed(np.asarray)(emb)
    starts = np.cumsum((0,) + t.chunks[0][:-1])
    parts = [
        dask.delayed(_project_block)(b, int(s), emb_d, correct_density)
        for b, s in zip(t.to_delayed().ravel(), starts, strict=True)
    ]
    return np.vstack(compute(*parts, desc="velocity projection"))


def _project_block(block: Any, row0: int, emb: np.ndarray, correct_density: bool) -> np.ndarray:
    block = sparse.csr_matrix(block)
    rows = np.arange(row0, row0 + block.shape[0])
    return ek.project_transitions(
        block.indptr, block.indices, block.data, rows, emb, correct_density
    )


@dataclass(frozen=True)
class KernelOptions:
    """Options of the transition kernels (each kernel reads the fields it uses).

    ``depth`` hops of neighbourhood and ``correct_density`` for all; ``transform`` and
    ``negatives`` (``'subtract'``, ``'add'`` or ``'drop'``) for the correlation kernels;
    ``m_diff``, ``adaptive``, ``tol`` and ``scale`` for the Itô kernel.
    """

    depth: int = 2
    correct_density: bool = True
    transform: str = "sqrt"
    negatives: str = "subtract"
    m_diff: float = 2.0
    adaptive: bool = True
    tol: float = 1e-7
    scale: bool = True


def _correlation(centred: bool) -> Callable[[KernelInputs, KernelOptions], Any]:
    def build(inp: KernelInputs, o: KernelOptions) -> tuple[da.Array, np.ndarray]:
        return correlation_transitions(
            inp,
            centred=centred,
            transform=o.transform,
            depth=o.depth,
            negatives=o.negatives,
            correct_density=o.correct_density,
        )

    return build


def _ito(inp: KernelInputs, o: KernelOptions) -> tuple[da.Array, np.ndarray]:
    return ito_transitions(
        inp,
        depth=o.depth,
        m_diff=o.m_diff,
        adaptive=o.adaptive,
        tol=o.tol,
        correct_density=o.correct_density,
        scale=o.scale,
    )


KERNELS: dict[str, Callable[[KernelInputs, KernelOptions], tuple[da.Array, np.ndarray]]] = {
    "pearson": _correlation(centred=True),
    "cosine": _correlation(centred=False),
    "kmc": _ito,
}
"""Kernel name -> builder ``(inputs, options) -> (lazy CSR transitions, embedding velocity)``."""

REPROJECTABLE = ("pearson", "cosine")
"""Kernels whose embedding velocity follows from a stored transition matrix alone."""


def preserve_length(velocity: np.ndarray, transitions: Any, v: Any) -> np.ndarray:
    """Rescale each embedding velocity to the transition-weighted gene-space speed.

    The speed of cell ``i`` is ``sum_j T_ij |v_j|`` (``|v_j|`` the gene-space norm, NaN
    counted as 0), times the ratio of the median embedding speed to the median gene-space
    speed. Two computes: the norms, then the weighted speeds per row block of ``T``.
    """
    norms = as_rows(v).map_blocks(tk.row_norms, drop_axis=1, dtype=np.float64)
    high = compute(norms, desc="velocity norms")[0]
    t = as_rows(transitions)
    high_d = dask.delayed(high, traverse=False)
    parts = [dask.delayed(tk.weighted_speed)(b, high_d) for b in t.to_delayed().ravel()]
    speed = np.concatenate(compute(*parts, desc="weighted speed"))
    low = np.linalg.norm(velocity, axis=1)
    scaler = np.nanmedian(low) / np.nanmedian(high)
    factor = np.divide(speed * scaler, low, out=np.zeros_like(low), where=low > 0)
    return velocity * factor[:, None]
