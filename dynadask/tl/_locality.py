"""``dyn.tl.locality_order``: an order of the cells that keeps neighbours in nearby rows."""

from __future__ import annotations

import anndata as ad
import numpy as np

from .neighbors import embedding


def locality_order(
    adata: ad.AnnData,
    basis: str = "pca",
    n_components: int | None = None,
    *,
    leaf_size: int = 64,
) -> np.ndarray:
    """Return a permutation of the cells under which nearby cells get nearby row numbers.

    The order is the leaf order of a k-d tree on the embedding (each split halves a node at
    the median of its widest coordinate), so every subtree is a contiguous run of rows. With
    the cells stored in that order, each row chunk's kNN neighbourhoods lie in few other
    chunks: :func:`dynadask.tl.moments` then gathers its neighbour rows from a handful of
    chunks instead of all of them. Apply it before writing a store, e.g.
    ``adata = adata[dyn.tl.locality_order(adata)].copy()``, then ``dyn.io.convert``.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']``.
    basis
        Embedding to order by.
    n_components
        Use only the first components (all by default).
    leaf_size
        Cells per leaf of the tree (their order inside a leaf is arbitrary).

    Returns
    -------
    numpy.ndarray
        ``n_cells`` positions: ``adata[order]`` is the reordered data.

    Writes
    ------
    Nothing.

    Raises
    ------
    ValueError
        When the embedding is missing (run ``dyn.pp.pca``).
    """
    from sklearn.neighbors import KDTree

    x = embedding(adata, basis, n_components)
    tree = KDTree(x, leaf_size=leaf_size)
    return np.asarray(tree.get_arrays()[1], dtype=np.int64)
