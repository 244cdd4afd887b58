"""Neighbourhoods over row blocks: kNN lists from a graph, one block plan, one gather.

Every neighbourhood step (moments, transition kernels, velocity confidence) works the same
way: the cells are cut in row blocks; for each block a :class:`Block` lists the sorted cells
its rows' neighbourhoods touch (:func:`plan_blocks`, from a sparse graph's rows or from kNN
lists followed ``depth`` hops); one task per block then gathers just those rows of an input
(:func:`gather`, through :func:`dynadask.graph.blocks.gather_rows`), one small take per row
block that holds them. No cells x cells matrix is ever dense.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
from scipy import sparse

from .._core.compute import compute
from ..kernels import neighbors as kn
from .blocks import as_rows, gather_rows, row_pieces

Knn = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Block:
    """Rows ``start:stop`` and the sorted global cells their neighbourhoods touch."""

    start: int
    stop: int
    cells: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        """Global indices of the block's rows."""
        return np.arange(self.start, self.stop)

    def local(self, cells: np.ndarray) -> np.ndarray:
        """Positions of global ``cells`` (all among :attr:`cells`) in the gathered rows."""
        return np.searchsorted(self.cells, cells)


def knn_from_graph(adj: Any, k: int) -> Knn:
    """Neighbour lists read from a stored distance graph (scipy or Dask CSR row blocks).

    Returns
    -------
    idx, dist
        ``(n_cells, k)``: the cell itself first, then its ``k - 1`` nearest stored neighbours;
        missing ones are ``-1`` at distance ``inf`` (see :func:`self_padded`).
    """
    if sparse.issparse(adj):
        adj = sparse.csr_matrix(adj)
        return kn.knn_from_distances(adj.indptr, adj.indices, adj.data, 0, k)
    x = as_rows(adj)
    starts = np.cumsum((0,) + x.chunks[0][:-1])
    parts = [
        dask.delayed(_graph_block)(b, int(s), k)
        for b, s in zip(x.to_delayed().ravel(), starts, strict=True)
    ]
    done = compute(*parts, desc="neighbour lists")
    return np.vstack([p[0] for p in done]), np.vstack([p[1] for p in done])


def _graph_block(block: Any, row0: int, k: int) -> Knn:
    block = sparse.csr_matrix(block)
    return kn.knn_from_distances(block.indptr, block.indices, block.data, row0, k)


def self_padded(idx: np.ndarray) -> np.ndarray:
    """Neighbour indices with missing entries (``-1``) replaced by the cell itself."""
    idx = np.asarray(idx, dtype=np.int64)
    return np.where(idx >= 0, idx, np.arange(idx.shape[0])[:, None])


def _chunk_sizes(chunks: int | Sequence[int], n: int) -> tuple[int, ...]:
    if isinstance(chunks, (int, np.integer)):
        return tuple(min(int(chunks), n - s) for s in range(0, n, int(chunks)))
    return tuple(int(c) for c in chunks)


def plan_blocks(neighbourhood: Any, chunks: int | Sequence[int], depth: int = 1) -> list[Block]:
    """Cut the cells in row blocks and list the cells each block's neighbourhoods touch.

    Parameters
    ----------
    neighbourhood
        A sparse ``n x n`` graph (a row's neighbourhood: its stored columns) or ``(n, k)``
        kNN indices (a row's neighbourhood: the cells within ``depth`` hops, itself
        included).
    chunks
        Rows per block, or the sizes of the blocks.
    depth
        Hops along kNN indices (ignored for a graph).
    """
    graph = sparse.issparse(neighbourhood)
    if graph:
        neighbourhood = sparse.csr_matrix(neighbourhood)
    blocks, start = [], 0
    for size in _chunk_sizes(chunks, neighbourhood.shape[0]):
        stop = start + size
        if graph:
            cells = np.unique(neighbourhood[start:stop].indices).astype(np.int64)
        else:
            cells = _reached(neighbourhood, start, stop, depth)
        blocks.append(Block(start, stop, cells))
        start = stop
    return blocks


def _reached(knn: np.ndarray, start: int, stop: int, depth: int) -> np.ndarray:
    """Sorted cells within ``depth`` hops of rows ``start:stop`` along ``knn``, those included.

    The union of the rows' neighbourhoods, one hop at a time over the cells reached so far
    (not each row's own sorted neighbourhood, which the kernels build where they need it).
    """
    cells = np.arange(start, stop, dtype=np.int64)  # int64 stays int64 through the unions
    for _ in range(depth):
        cells = np.union1d(cells, knn[cells].ravel())
    return cells


def local_graph(graph: sparse.csr_matrix, block: Block) -> sparse.csr_matrix:
    """The block's rows of ``graph`` with columns renumbered to positions in ``block.cells``."""
    part = sparse.csr_matrix(graph[block.start : block.stop])
    return sparse.csr_matrix(
        (part.data, block.local(part.indices), part.indptr),
        shape=(part.shape[0], block.cells.size),
    )


def gather(x: Any, block: Block, cols: np.ndarray | None = None, dtype: Any = np.float64) -> Any:
    """One lazy task with the rows ``block.cells`` (columns ``cols``) of ``x`` as ``dtype``.

    ``x`` is a Dask array of row blocks (:func:`dynadask.graph.blocks.as_rows`, made once
    for all blocks so that they share its pieces).
    """
    return gather_rows(x, block.cells, cols, dtype)


def chunks_touched(graph: sparse.csr_matrix, chunks: tuple[int, ...]) -> np.ndarray:
    """For each row block of ``graph`` (sizes ``chunks``), how many row chunks its cells span."""
    return np.array([len(row_pieces(b.cells, chunks)) for b in plan_blocks(graph, chunks)])
