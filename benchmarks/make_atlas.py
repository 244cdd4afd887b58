"""Write a large atlas of pancreas-like cells: continuous mixtures (default) or resampled copies.

``--kind continuous`` (default): each cell is a Poisson draw around a random mixture of two
neighbouring pancreas cells. A template cell ``i`` is drawn uniformly from the 3,696 pancreas
cells, ``j`` uniformly among ``i``'s ``--k`` nearest neighbours, ``w ~ Uniform(0, 1)`` and a
library-size factor ``f = exp(N(0, --library-sd))``; then for spliced and unspliced (all 2,000
genes) ``counts = Poisson(f * (w * counts_i + (1 - w) * counts_j))``. The list of
``(i, j, w, f)`` a row is drawn first on the client (a few numbers a cell), put in the chosen
row order, and each row block's counts are drawn by Dask tasks from its part of the list
(seeded by block, part and layer), so no process ever holds the whole matrix. The store is
written by anndata itself (``AnnData.write_zarr`` over Dask arrays of CSR blocks, which
anndata writes chunk by chunk), Zarr format 3, with ``X`` = spliced, layers ``spliced`` and
``unspliced`` and obs ``clusters``, ``clusters_coarse`` (from ``i``), ``template_i``,
``template_j``, ``weight`` (``w``) and ``library_factor`` (``f``).

The template's kNN graph (30 neighbours; it gives the ``j`` candidates and the locality order)
comes from ``--template-graph``: ``monocle`` (default) runs ``dyn.pp.recipe_monocle`` and
``dyn.tl.neighbors`` on the in-memory template, as the workflow does; ``simple`` uses spliced
counts normalised to the median library size, log1p, 30 principal components and exact
Euclidean kNN (scikit-learn), which takes about a second instead of about fifteen.

``--kind copies`` is the earlier atlas, kept for the README's reference row: Poisson-resampled
copies of pancreas cells (every stored count ``c`` replaced by a Poisson draw of mean ``c``),
written by ``dyn.io.create_store``.

Row order (``--order``): ``locality`` (default) sorts the cells by their template cell ``i``'s
position in ``dyn.tl.locality_order`` of the template (reverse Cuthill-McKee on its kNN graph),
as a store is laid out for dynadask; ``by-cluster`` sorts them by cluster label (ties in random
order), like per-sample files concatenated; ``random`` is a seeded random permutation, the
worst case for every neighbourhood step.

    python -m benchmarks.make_atlas --cells 100000 --order random --out atlas_100k.zarr
    python -m benchmarks.make_atlas --kind copies --cells 1000000 --out atlas_1M.zarr
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import dask
import dask.array as da
import numpy as np
import pandas as pd
from scipy import sparse

import dynadask as dyn
from dynadask._core.compute import share
from dynadask.io.writers import quiet_zarr

from .common import MemoryMonitor, format_rows, machine, save

LAYERS = ("spliced", "unspliced")
KINDS = ("continuous", "copies")
ORDERS = ("locality", "by-cluster", "random")
GRAPHS = ("monocle", "simple")
GRAPH_NEIGHBOURS = 30  # neighbours per template cell in its kNN graph (self included)
PART_ROWS = 5_000  # rows drawn by one task; a row block is assembled from its parts


# --- the template --------------------------------------------------------------------------


@dataclass
class Template:
    """The in-memory pancreas cells an atlas is drawn from."""

    adata: ad.AnnData
    counts: dict[str, sparse.csr_matrix]  # float32 CSR by layer
    knn: np.ndarray  # (cells, GRAPH_NEIGHBOURS - 1) neighbours of each cell, nearest first
    rank: np.ndarray  # each cell's position in the locality order


def load_template(graph: str = "monocle") -> Template:
    """Return the pancreas template with its kNN lists and locality ranks.

    ``graph='monocle'``: dynamo's preprocessing (``recipe_monocle``) and ``tl.neighbors`` on a
    copy of the template; ``graph='simple'``: median-normalised log1p spliced counts, 30 PCs,
    exact kNN. Either way the locality order is ``dyn.tl.locality_order(method='graph')`` on
    that graph.
    """
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    src = dyn.sample_data.pancreas()
    counts = {k: sparse.csr_matrix(src.layers[k], dtype=np.float32) for k in LAYERS}
    a = src.copy()
    if graph == "monocle":
        dyn.pp.recipe_monocle(a)
        dyn.tl.neighbors(a, n_neighbors=GRAPH_NEIGHBOURS)
        knn = _drop_self(np.asarray(a.uns["neighbors"]["indices"]))
    else:
        knn = _drop_self(_simple_knn(counts["spliced"], GRAPH_NEIGHBOURS))
        n, width = knn.shape
        g = sparse.csr_matrix(
            (np.ones(knn.size), knn.ravel(), np.arange(0, n * width + 1, width)), shape=(n, n)
        )
        a.obsp["connectivities"] = ((g + g.T) > 0).astype(np.float32)
    order = dyn.tl.locality_order(a, method="graph")
    rank = np.empty(a.n_obs, dtype=np.int64)
    rank[order] = np.arange(a.n_obs)
    return Template(adata=src, counts=counts, knn=knn, rank=rank)


def _simple_knn(spliced: sparse.csr_matrix, k: int, n_pcs: int = 30) -> np.ndarray:
    """kNN indices (self first) on 30 PCs of median-normalised log1p counts."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    totals = np.asarray(spliced.sum(axis=1)).ravel()
    scale = np.median(totals) / np.maximum(totals, 1)
    x = np.log1p(sparse.diags(scale) @ spliced).toarray()
    with threadpool_limits(1):  # small matrices: threads beside the workers only contend
        pcs = PCA(n_components=n_pcs, random_state=0).fit_transform(x)
        return NearestNeighbors(n_neighbors=k).fit(pcs).kneighbors(pcs, return_distance=False)


def _drop_self(indices: np.ndarray) -> np.ndarray:
    """Each row's neighbours without the cell itself, nearest first, one fewer column."""
    keep = indices != np.arange(len(indices))[:, None]
    width = keep.sum(axis=1).min()
    return np.stack([row[m][:width] for row, m in zip(indices, keep, strict=True)])


# --- the plan: one (i, j, w, f) a row, in the chosen order ---------------------------------


def plan_rows(
    template: Template, n_cells: int, seed: int, order: str, k: int = 15, library_sd: float = 0.3
) -> pd.DataFrame:
    """Return the template cells, weight and library factor of every output row, in order.

    The cells drawn do not depend on ``order`` (only their positions do): the draws use
    ``seed`` and the permutation its own stream.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if not 1 <= k <= template.knn.shape[1]:
        raise ValueError(f"k must be between 1 and {template.knn.shape[1]}, got {k}")
    rng = np.random.default_rng([seed, 1])
    n_template = template.knn.shape[0]
    i = rng.integers(0, n_template, n_cells)
    j = template.knn[i, rng.integers(0, k, n_cells)]
    w = rng.random(n_cells)
    f = np.exp(rng.normal(0.0, library_sd, n_cells))
    perm = np.random.default_rng([seed, 2]).permutation(n_cells)
    if order != "random":
        if order == "by-cluster":
            key = template.adata.obs["clusters"].cat.codes.to_numpy()[i[perm]]
        else:
            key = template.rank[i[perm]]
        perm = perm[np.argsort(key, kind="stable")]
    return pd.DataFrame(
        {
            "template_i": i[perm].astype(np.int32),
            "template_j": j[perm].astype(np.int32),
            "weight": w[perm].astype(np.float32),
            "library_factor": f[perm].astype(np.float32),
        }
    )


# --- the counts, block by block ------------------------------------------------------------


def mix_part(
    counts: sparse.csr_matrix,
    i: np.ndarray,
    j: np.ndarray,
    w: np.ndarray,
    f: np.ndarray,
    seed: tuple[int, ...],
) -> sparse.csr_matrix:
    """Poisson counts of mean ``f * (w * counts[i] + (1 - w) * counts[j])``, row by row."""
    wi = (f * w).astype(np.float32)
    wj = (f * (1.0 - w)).astype(np.float32)
    mean = (sparse.diags(wi) @ counts[i] + sparse.diags(wj) @ counts[j]).tocsr()
    mean.sum_duplicates()
    # a zero mean draws zero: only the union of the two cells' stored entries is drawn
    mean.data = np.random.default_rng(list(seed)).poisson(mean.data).astype(np.float32)
    mean.eliminate_zeros()
    return mean


def _vstack(parts: list[sparse.csr_matrix]) -> sparse.csr_matrix:
    return sparse.vstack(parts, format="csr")


def continuous_layers(
    template: Template, plan: pd.DataFrame, rows: int, seed: int, client=None
) -> dict[str, da.Array]:
    """Lazy CSR layers of the planned cells, ``rows`` cells a Dask block."""
    n_cells, n_genes = len(plan), template.adata.n_vars
    cols = [plan[c].to_numpy() for c in ("template_i", "template_j", "weight", "library_factor")]
    meta = sparse.csr_matrix((0, 0), dtype=np.float32)
    layers = {}
    for li, name in enumerate(LAYERS):
        # the template goes to each worker once, not into every task
        shared = (
            client.scatter(template.counts[name], broadcast=True)
            if client
            else dask.delayed(template.counts[name])
        )
        blocks = []
        for b, start in enumerate(range(0, n_cells, rows)):
            stop = min(start + rows, n_cells)
            parts = [
                dask.delayed(mix_part, pure=True)(
                    shared, *(c[s : min(s + PART_ROWS, stop)] for c in cols), (seed, b, p, li)
                )
                for p, s in enumerate(range(start, stop, PART_ROWS))
            ]
            block = dask.delayed(_vstack, pure=True)(parts)
            blocks.append(
                da.from_delayed(block, shape=(stop - start, n_genes), dtype=np.float32, meta=meta)
            )
        layers[name] = da.concatenate(blocks, axis=0)
    return layers


def continuous_atlas(
    n_cells: int,
    rows: int,
    seed: int,
    client=None,
    order: str = "locality",
    *,
    k: int = 15,
    library_sd: float = 0.3,
    template: Template | None = None,
    graph: str = "monocle",
) -> ad.AnnData:
    """Return the continuous atlas as an AnnData whose X and layers are lazy CSR matrices."""
    template = template or load_template(graph)
    plan = plan_rows(template, n_cells, seed, order, k=k, library_sd=library_sd)
    layers = continuous_layers(template, plan, rows, seed, client)
    src = template.adata
    i = plan["template_i"].to_numpy()
    obs = pd.DataFrame(
        {
            "clusters": src.obs["clusters"].values[i],
            "clusters_coarse": src.obs["clusters_coarse"].values[i],
            **{c: plan[c].to_numpy() for c in plan.columns},
        },
        index=pd.Index([f"cell{n}" for n in range(n_cells)]),
    )
    return ad.AnnData(X=layers["spliced"], obs=obs, var=src.var[[]].copy(), layers=layers)


def write_anndata(adata: ad.AnnData, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``adata`` with anndata's own ``write_zarr`` (Zarr format 3, unsharded).

    anndata writes a Dask CSR matrix one row chunk at a time: it computes the first chunk,
    writes it, then computes and appends each next chunk, so the client holds one chunk.
    """
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
        shutil.rmtree(path)
    with ad.settings.override(zarr_write_format=3, auto_shard_zarr_v3=False), quiet_zarr():
        adata.write_zarr(path)
    return path


# --- the copies (the earlier atlas, kept for the reference row) ----------------------------


def resample_block(
    template: dict[str, sparse.csr_matrix], cells: np.ndarray, seed: int, block: int
) -> dict[str, sparse.csr_matrix]:
    """Return Poisson-resampled copies of the template ``cells`` for every layer."""
    rng = np.random.default_rng([seed, block])
    out = {}
    for name in LAYERS:
        rows = template[name][cells]
        rows.data = rng.poisson(rows.data).astype(np.float32)
        rows.eliminate_zeros()
        out[name] = rows
    return out


def draw_cells(
    n_cells: int, n_template: int, rows: int, seed: int, key: np.ndarray | None = None
) -> list[np.ndarray]:
    """Return the template cell indices of every row block (seeded by block).

    With ``key`` (a sort key per template cell: its locality rank or cluster code) the cells
    are stably sorted by their template's key, so that row blocks hold contiguous stretches.
    """
    blocks = []
    for b, start in enumerate(range(0, n_cells, rows)):
        size = min(rows, n_cells - start)
        blocks.append(np.random.default_rng([seed, b, 1]).integers(0, n_template, size))
    if key is None:
        return blocks
    cells = np.concatenate(blocks)
    cells = cells[np.argsort(key[cells], kind="stable")]
    return np.split(cells, np.cumsum([b.size for b in blocks])[:-1])


def template_rank(src) -> np.ndarray:
    """Each pancreas cell's position in ``dyn.tl.locality_order`` of the pancreas cells."""
    a = src.copy()
    dyn.pp.recipe_monocle(a)
    dyn.tl.neighbors(a)
    order = dyn.tl.locality_order(a, method="graph")
    rank = np.empty(a.n_obs, dtype=np.int64)
    rank[order] = np.arange(a.n_obs)
    return rank


def atlas_arrays(n_cells: int, rows: int, seed: int, client=None, order: str = "locality"):
    """Return obs, var and the lazy layers of the copies atlas of ``n_cells`` cells."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    src = dyn.sample_data.pancreas()
    template = {k: sparse.csr_matrix(src.layers[k], dtype=np.float32) for k in LAYERS}
    # the template goes to the workers as a file any of them can load again (a scattered
    # copy would be lost for good with a worker that dies), not into every task
    (shared,) = share([template])
    key = {
        "locality": template_rank(src) if order == "locality" else None,
        "by-cluster": src.obs["clusters"].cat.codes.to_numpy(),
        "random": None,
    }[order]
    picks = draw_cells(n_cells, src.n_obs, rows, seed, key)
    blocks = {k: [] for k in LAYERS}
    meta = sparse.csr_matrix((0, 0), dtype=np.float32)
    for b, cells in enumerate(picks):
        both = dask.delayed(resample_block, pure=True, nout=None)(shared, cells, seed, b)
        for k in LAYERS:
            blocks[k].append(
                da.from_delayed(
                    both[k], shape=(len(cells), src.n_vars), dtype=np.float32, meta=meta
                )
            )
    layers = {k: da.concatenate(v, axis=0) for k, v in blocks.items()}
    source = np.concatenate(picks)
    obs = pd.DataFrame(
        {
            "clusters": src.obs["clusters"].values[source],
            "clusters_coarse": src.obs["clusters_coarse"].values[source],
            "source_cell": src.obs_names.values[source],
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    return obs, src.var[[]].copy(), layers


# --- one entry point for both kinds --------------------------------------------------------


def make_atlas(
    path: str | Path,
    n_cells: int,
    *,
    kind: str = "continuous",
    order: str = "locality",
    chunk_cells: int = 20_000,
    seed: int = 0,
    client=None,
    overwrite: bool = False,
    **continuous: object,
) -> Path:
    """Write an atlas store of ``kind`` at ``path`` (``continuous`` takes ``k``,
    ``library_sd``, ``graph`` or ``template``); return the path."""
    if kind == "continuous":
        adata = continuous_atlas(n_cells, chunk_cells, seed, client, order, **continuous)
        return write_anndata(adata, path, overwrite=overwrite)
    if kind == "copies":
        obs, var, layers = atlas_arrays(n_cells, chunk_cells, seed, client, order)
        return dyn.io.create_store(
            path, obs, var, layers, chunk_cells=chunk_cells, overwrite=overwrite
        )
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--kind", choices=KINDS, default="continuous")
    parser.add_argument("--order", choices=ORDERS, default="locality")
    parser.add_argument("--chunk-cells", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=15, help="continuous: j among i's k neighbours")
    parser.add_argument(
        "--library-sd", type=float, default=0.3, help="continuous: sd of log library factor"
    )
    parser.add_argument("--template-graph", choices=GRAPHS, default="monocle")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/make_atlas"))
    args = parser.parse_args(argv)
    out = args.out or Path(f"atlas_{args.cells}_{args.kind}_{args.order}.zarr")
    extra = (
        {"k": args.k, "library_sd": args.library_sd, "graph": args.template_graph}
        if args.kind == "continuous"
        else {}
    )
    kwargs = {"n_workers": args.workers} if args.workers else {}
    rows: list = []
    print(machine())
    with dyn.parallel.client(args.scheduler, **kwargs) as client, MemoryMonitor() as mon:
        print(f"dashboard: {client.dashboard_link}")
        with mon.stage("make_atlas", args.cells, rows, note=f"{args.kind}, {args.order}"):
            make_atlas(
                out,
                args.cells,
                kind=args.kind,
                order=args.order,
                chunk_cells=args.chunk_cells,
                seed=args.seed,
                client=client,
                overwrite=True,
                **extra,
            )
    print(format_rows(rows))
    print(dyn.io.format_info(dyn.io.store_info(out)))
    meta = {"cells": args.cells, "store": str(out), "kind": args.kind, "order": args.order}
    save(rows, args.results, {**meta, **extra})


if __name__ == "__main__":
    main()
