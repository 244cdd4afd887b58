"""``dyn.tl.moments``: first and second moments of the normalised layers on the kNN graph."""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import dask
import dask.array as da
import numpy as np
from scipy import sparse

from .._core import keys
from .._core.compute import compute, share, task_slots
from .._core.errors import InputError, MissingKeyError
from .._core.validate import enough_cells, unique_names
from ..graph import moments as gm
from ..graph import neighbors as gn
from ..graph import neighbourhood as nb
from ..io import commit
from ..kernels import moments as km
from .neighbors import embedding, neighbors, search

# dynamo's layer families: second moments only within a family, never among uu/ul/su/sl
_FAMILIES = tuple(
    tuple(keys.normalised_key(k) for k in fam)
    for fam in ((keys.SPLICED, keys.UNSPLICED), keys.NEW_TOTAL, keys.LABELLING_LAYERS)
)
_PROTEIN = "X_protein"
# row blocks written per wave and per task slot of the scheduler (see ``io.commit``'s waves)
WAVE_BLOCKS_PER_SLOT = 8


def moments(
    adata: ad.AnnData,
    X_data: Any = None,  # noqa: N803 - dynamo's name
    genes: Any = None,
    *,
    group: str | bool | None = None,
    conn: Any = None,
    use_gaussian_kernel: bool = False,
    normalize: bool = True,
    use_mnn: bool = False,
    layers: str | list[str] = "all",
    n_pca_components: int = 30,
    n_neighbors: int = 30,
    copy: bool = False,
) -> ad.AnnData | None:
    """Smooth the normalised layers over each cell's kNN neighbourhood (first/second moments).

    The smoothing graph is dynamo's: the symmetric fuzzy (UMAP) kNN graph of
    ``obsm['X_pca']`` (``n_neighbors`` per cell), made binary, with each cell added to its own
    neighbourhood and rows divided by their counts. ``M_x = W @ X_x`` for every normalised
    layer ``X_x`` (size-factor normalised, not log-transformed), and ``M_xy = W @ (X_x * X_y)``
    within each layer family (spliced/unspliced -> ``M_ss, M_us, M_uu``; new/total ->
    ``M_nn, M_tn, M_tt``). Each output row block gathers only the rows its neighbourhoods
    use; on a store the blocks are written in waves of a few blocks per worker thread, so a
    worker holds the input blocks of one wave rather than most of the layers. A kNN graph
    already in ``obsp['distances']`` with the same settings is reused; when there is none
    (and the graph is the default one: all cells, ``X_pca``), it is made with
    :func:`dynadask.tl.neighbors` and stored, so later steps (``cell_velocities``) find it.

    Parameters
    ----------
    adata
        AnnData with normalised layers (``X_spliced``, …) and ``obsm['X_pca']``.
    X_data
        Cells x dimensions coordinates for the kNN graph instead of ``X_pca``.
    genes
        Genes to smooth (names or a boolean mask); default all genes, as dynamo. Columns of
        other genes are 0 (use e.g. ``adata.var['use_for_pca']`` on wide data to save work).
    group
        obs column: the graph is built within each group only (cells of different groups
        never mix). Default: the labelling time column ``uns['pp']['tkey']`` when set;
        ``False`` turns grouping off.
    conn
        An ``n_cells x n_cells`` graph to smooth with, used as given (rows normalised only
        with ``use_gaussian_kernel`` and ``normalize``, as dynamo).
    use_gaussian_kernel
        Weigh neighbours by ``exp(-d^2 / 200)`` instead of the binary fuzzy graph.
    normalize
        Normalise the Gaussian kernel's rows to sum 1.
    use_mnn
        Not available in dynadask (raises).
    layers
        ``'all'`` or normalised layer names (``'X_spliced'`` or ``'spliced'``).
    n_pca_components, n_neighbors
        Components of ``X_pca`` and neighbours (self included) of the graph.
    copy
        Work on (and return) a copy.

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy``, else ``None`` (``adata`` updated).

    Writes
    ------
    layers['M_s'], layers['M_u'], layers['M_ss'], layers['M_us'], layers['M_uu']
        For spliced/unspliced data (dense float32; likewise ``M_n``, ``M_t``, ``M_nn``,
        ``M_tn``, ``M_tt`` for new/total and ``M_uu``, ``M_ul``, ``M_su``, ``M_sl``).
    obsm['M_p']
        Smoothed ``obsm['X_protein']`` when present.
    obsp['moments_con']
        The smoothing graph (float32 CSR).
    obsp['distances'], obsp['connectivities'], uns['neighbors']
        The kNN graph, when none was stored (see above).

    Raises
    ------
    ValueError
        No normalised layers (run ``dyn.pp.recipe_monocle``), a missing layer, missing
        ``X_pca`` (run ``dyn.pp.pca``), an unknown group column, a ``conn`` of the wrong shape,
        ``use_mnn``.
    """
    if use_mnn:
        raise InputError(
            "use_mnn=True is not available in dynadask: use the default kNN graph "
            "or pass your own graph as conn"
        )
    unique_names(adata)
    adata = adata.copy() if copy else adata
    names = _layer_names(adata, layers)
    cols = _gene_columns(adata, genes)
    w = _smoothing_graph(
        adata, X_data, conn, group, use_gaussian_kernel, normalize, n_pca_components, n_neighbors
    )
    inputs = {n: gm.Input(adata.layers[n], cols, adata.n_vars) for n in names}
    jobs = moment_jobs(names)
    if _PROTEIN in adata.obsm:
        inputs[_PROTEIN] = gm.Input(adata.obsm[_PROTEIN])
        jobs["M_p"] = (_PROTEIN, None)
    out = gm.smooth_inputs(w, inputs, jobs)
    obsm = {"M_p": out.pop("M_p")} if "M_p" in out else {}
    # a block reads rows of several input blocks: written a few blocks per task slot at a
    # time, a worker holds the inputs of those blocks, not nearly the whole layers
    waves = WAVE_BLOCKS_PER_SLOT * task_slots()
    commit(adata, "moments", layers=out, obsm=obsm, obsp={keys.MOMENTS_CON: w}, waves=waves)
    return adata if copy else None


def moment_jobs(names: list[str]) -> dict[str, tuple[str, str | None]]:
    """Output layer -> (layer, second layer or None), in dynamo's order and naming.

    Layers are visited in reverse-sorted order; a first moment keeps the first definition
    of its name, a second moment ``M_<a><b>`` (letters after ``X_``) overwrites.
    """
    names = sorted(names, reverse=True)
    jobs: dict[str, tuple[str, str | None]] = {}
    for i, a in enumerate(names):
        jobs.setdefault(keys.FIRST_MOMENTS[a], (a, None))
        fam = _family(a)
        for b in names[i:]:
            if _family(b) != fam or fam == 2:
                continue
            jobs.setdefault(keys.FIRST_MOMENTS[b], (b, None))
            jobs[f"M_{a[2]}{b[2]}"] = (a, b)
    return jobs


def _family(name: str) -> int:
    return next(i for i, fam in enumerate(_FAMILIES) if name in fam)


def _layer_names(adata: ad.AnnData, layers: str | list[str]) -> list[str]:
    present = [
        k for k in adata.layers if k.startswith("X_") and not k.endswith(("matrix", "ambiguous"))
    ]
    if layers == "all":
        wanted = present
    else:
        wanted = [keys.normalised_key(str(k)) for k in np.atleast_1d(layers)]
        missing = [k for k in wanted if k not in adata.layers]
        if missing:
            raise MissingKeyError(
                f"layer(s) {missing} missing (have {present}): run "
                "dyn.pp.recipe_monocle(adata) or dyn.pp.normalize(adata) first"
            )
    known = [k for k in wanted if k in keys.FIRST_MOMENTS]
    for k in sorted(set(wanted) - set(known)):
        warnings.warn(f"layer {k} is not an expression layer dynamo smooths: skipped", stacklevel=3)
    if not known:
        raise MissingKeyError(
            "no normalised expression layers (X_spliced, X_unspliced, X_new, "
            "X_total, …) in adata.layers: run dyn.pp.recipe_monocle(adata) first"
        )
    return known


def _gene_columns(adata: ad.AnnData, genes: Any) -> np.ndarray | None:
    if genes is None:
        return None
    arr = np.atleast_1d(np.asarray(genes))
    if arr.dtype == bool:
        if arr.size != adata.n_vars:
            raise InputError(f"genes mask has {arr.size} entries, adata has {adata.n_vars}")
        mask = arr
    else:
        mask = adata.var_names.isin(list(arr))
        unknown = sorted(set(arr.astype(str)) - set(adata.var_names))
        if unknown:
            raise MissingKeyError(f"{len(unknown)} genes not in adata.var_names: {unknown[:5]}")
    if not mask.any():
        raise InputError("no genes to smooth: the gene selection is empty")
    return None if mask.all() else np.flatnonzero(mask)


def resolve_groups(adata: ad.AnnData, group: str | bool | None) -> list[np.ndarray]:
    """Index arrays of the cells of each group (one group of all cells when not grouping)."""
    if group is None:
        tkey = (
            adata.uns.get("pp", {}).get("tkey") if isinstance(adata.uns.get("pp"), dict) else None
        )
        group = tkey if tkey not in (None, "None") else False
    if group is False:
        return [np.arange(adata.n_obs)]
    if group not in adata.obs:
        raise MissingKeyError(
            f"group {group!r} is not a column of adata.obs (have {list(adata.obs.columns)})"
        )
    codes = np.unique(adata.obs[group].astype(str).to_numpy(), return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)


def _smoothing_graph(adata, X_data, conn, group, gaussian, normalize, n_pcs, k):  # noqa: N803
    if conn is not None:
        w = _given_graph(adata, conn)
        return km.row_normalise(w) if gaussian and normalize else w.astype(np.float32)
    groups = resolve_groups(adata, group)
    knn_lists, k_cell = _neighbour_lists(adata, X_data, groups, n_pcs, k)
    # the graph and its temporaries (several copies of n_cells x k edges) are built on a
    # worker: the caller only receives the finished graph
    (lists,) = share([knn_lists])
    del knn_lists
    task = dask.delayed(_weighted_graph, pure=True)(lists, k_cell, groups, gaussian, normalize)
    return compute(task, desc="smoothing graph")[0]


def _weighted_graph(
    knn_lists, k_cell, groups, gaussian: bool, normalize: bool
) -> sparse.csr_matrix:
    g = gn.group_graph(knn_lists, k_cell, groups, kind="gaussian" if gaussian else "umap")
    if gaussian:
        return km.row_normalise(g) if normalize else g.astype(np.float32)
    return km.smoothing_graph(g)


def _given_graph(adata: ad.AnnData, conn: Any) -> sparse.csr_matrix:
    if conn.shape != (adata.n_obs, adata.n_obs):
        raise InputError(
            f"conn has shape {conn.shape}: it must be a square "
            f"({adata.n_obs}, {adata.n_obs}) cells x cells graph"
        )
    if isinstance(conn, da.Array):
        conn = compute(conn, desc="read conn")[0]
    return sparse.csr_matrix(conn)


def _neighbour_lists(adata, X_data, groups, n_pcs, k):  # noqa: N803
    n = adata.n_obs
    if len(groups) == 1:  # a group smaller than k gets all of its cells
        enough_cells(n, k)
    if len(groups) == 1 and X_data is None and _may_store_graph(adata, n_pcs):
        # the graph later steps use (dynamo leaves it after reduceDimension): one search
        neighbors(adata, n_pca_components=n_pcs, n_neighbors=k)
    if len(groups) == 1 and X_data is None and _stored_graph_fits(adata, n_pcs, k):
        lists = nb.knn_from_graph(adata.obsp[keys.DISTANCES], k)
        return lists, np.full(n, k)
    if X_data is not None:
        x = np.asarray(
            X_data.compute() if isinstance(X_data, da.Array) else X_data, dtype=np.float32
        )
        if x.shape[0] != n:
            raise InputError(f"X_data has {x.shape[0]} rows but adata has {n} cells")
    else:
        x = embedding(adata, "pca", n_pcs)
    if len(groups) == 1:
        return search(x, k, None), np.full(n, k)
    return gn.knn_in_groups(x, k, groups, None)


def _may_store_graph(adata: ad.AnnData, n_pcs: int) -> bool:
    """True when no kNN graph is stored and the default one (all of X_pca) is the one to use."""
    if keys.DISTANCES in adata.obsp or "neighbors" in adata.uns or keys.X_PCA not in adata.obsm:
        return False
    return adata.n_obs > 2 and 0 < adata.obsm[keys.X_PCA].shape[1] <= n_pcs


def _stored_graph_fits(adata: ad.AnnData, n_pcs: int, k: int) -> bool:
    record = adata.uns.get("neighbors", {})
    params = record.get("params", {}) if isinstance(record, dict) else {}
    if keys.DISTANCES not in adata.obsp or not params:
        return False
    n_dims = adata.obsm[keys.X_PCA].shape[1] if keys.X_PCA in adata.obsm else -1
    return (
        int(params.get("n_neighbors", -1)) == k
        and params.get("metric") == "euclidean"
        and str(params.get("basis", "pca")) in ("pca", "X_pca")
        and 0 < n_dims <= n_pcs
    )
