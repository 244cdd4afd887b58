"""The standard workflow ("10 minutes to dynamo") as named, resumable stages.

Each stage reads what earlier stages left in the store and ends with one commit, which
records it in ``uns['dynadask']['stages']``; a stage already recorded is skipped unless forced.
The stages, in order: ``preprocess`` (monocle recipe and PCA), ``neighbors``, ``reorder``
(the store's rows into a locality order when its kNN neighbourhoods are spread over many
row chunks; see :func:`reorder_if_spread`), ``moments``,
``dynamics``, ``reduceDimension`` (UMAP), ``cell_velocities`` (UMAP basis),
``cell_velocities_pca``, ``vectorfield`` (SparseVFC in the umap and pca bases),
``topography`` (umap), ``ddhodge`` (umap potential), ``vector_calculus`` (speed,
divergence, curl, acceleration and curvature in both bases), ``jacobian`` (pca, on a few
genes), ``fate`` (umap, from :func:`fate_cells`) and ``figures`` (written under the run's
figure folder, with the guide's 2 x 2 vector-field figure). A module adds a stage at its
place in the workflow with :func:`register` (``after=`` the stage it follows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
from pandas.api.types import is_float_dtype

from . import ext, io, pd, pl, vf
from ._core import keys
from ._core.compute import compute, scratch_beside
from ._core.errors import InputError, MissingKeyError
from .configuration import set_figure_params
from .graph.blocks import take_columns
from .graph.reorder import chunk_bounds
from .io.journal import store_lock
from .io.location import is_url
from .io.order import chunk_rows
from .pp import Preprocessor
from .summary import FAILED, RUN, SKIPPED, RunSummary
from .tl import cell_velocities, dynamics, moments, neighbors, reduceDimension
from .vf._genes import loadings


@dataclass(frozen=True)
class Context:
    """What a stage may need besides the data.

    Attributes
    ----------
    figures
        Where the ``figures`` stage writes.
    jacobian_genes
        The genes of the ``jacobian`` stage (empty: :func:`jacobian_genes` picks them).
    log
        Where a stage's notes go (the run's ``log``).
    """

    figures: Path = Path("figures")
    jacobian_genes: tuple[str, ...] = ()
    log: Callable[[str], None] = print


StageFn = Callable[[ad.AnnData, Context], "ad.AnnData | None"]
"""A stage; one that rewrites the store's rows returns the reopened AnnData."""

REORDER_MIN_SPREAD = 4.0
"""Reorder only when a row chunk's kNN neighbourhoods lie in more chunks than this on average,"""
REORDER_MIN_FRACTION = 0.25
"""and in more than this fraction of all the chunks."""


@dataclass(frozen=True)
class Stage:
    """One step of the workflow: ``run(adata, context)`` commits its results under ``record``.

    A stage that rewrites the store's row order returns the reopened AnnData, which the
    later stages then use.
    """

    name: str
    run: StageFn
    record: str


STAGES: list[Stage] = []


def register(
    name: str, record: str | None = None, *, after: str | None = None
) -> Callable[[StageFn], StageFn]:
    """Add a function ``fn(adata, context)`` to the workflow (a decorator).

    Parameters
    ----------
    name
        The stage's name (``--stages`` on the command line).
    record
        The stage name its last commit records as complete (default: ``name``).
    after
        The stage it follows; default: the end of the workflow so far. A module that adds
        a stage to the guide's workflow names its place here, e.g.
        ``@register("ddhodge", after="topography")``.

    Raises
    ------
    dynadask.InputError
        If ``name`` is taken or ``after`` names no stage.
    """
    names = [s.name for s in STAGES]
    if name in names:
        raise InputError(f"a stage named {name!r} exists already: pick another name")
    if after is not None and after not in names:
        raise InputError(f"no stage {after!r} to add {name!r} after: the stages are {names}")
    position = len(STAGES) if after is None else names.index(after) + 1

    def add(fn: StageFn) -> StageFn:
        STAGES.insert(position, Stage(name, fn, record or name))
        return fn

    return add


def completed(adata: ad.AnnData) -> dict[str, str]:
    """Return the stages recorded as complete in ``adata`` (name -> time)."""
    return dict(adata.uns.get(keys.DYNADASK, {}).get(keys.STAGES, {}))


def run(
    store: str | Path,
    *,
    stages: list[str] | None = None,
    force: bool = False,
    figures: str | Path | None = None,
    jacobian_genes: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    summary: RunSummary | None = None,
) -> ad.AnnData:
    """Run the workflow's stages on a store, skipping those already complete.

    Parameters
    ----------
    store
        A store written by :func:`dynadask.io.convert`: a path, or a URL in an object store
        (``s3://bucket/atlas.zarr``; its storage options as given to :func:`dynadask.io.open`
        or :func:`dynadask.io.convert` before, else from the environment).
    stages
        Names of the stages to run (default: all, in order).
    force
        Run stages even when the store records them as complete.
    figures
        Folder of the ``figures`` stage (default: ``figures/`` beside the store; for a URL,
        ``figures/`` in the working folder).
    jacobian_genes
        Regulators and effectors of the ``jacobian`` stage (default: :func:`jacobian_genes`).
    log
        Where progress lines go.
    summary
        Filled in with each stage's outcome and wall time, the store and the figure folder
        (also when a stage fails: that stage is recorded ``failed``).

    Returns
    -------
    anndata.AnnData
        The store, opened lazily, with every stage's results.

    Raises
    ------
    dynadask.InputError
        If ``stages`` names a stage that does not exist (a ``ValueError``).
    dynadask.StoreLockedError
        If another process is writing the store.
    """
    check_stages(stages)
    summary = summary if summary is not None else RunSummary()
    remote = is_url(str(store))
    if figures:
        folder = Path(figures)
    else:
        folder = Path("figures") if remote else Path(store).parent / "figures"
    context = Context(folder, tuple(jacobian_genes or ()), log)
    summary.store, summary.figures = (str(store) if remote else Path(store)), context.figures
    adata = io.open(store)
    with store_lock(store):  # one writer for the whole run, not only for each commit
        adata = _run_stages(adata, store, stages, force, context, summary)
    return adata


def check_stages(stages: list[str] | None) -> None:
    """Raise :class:`dynadask.InputError` when ``stages`` names a stage that does not exist."""
    names = [s.name for s in STAGES]
    unknown = sorted(set(stages or []) - set(names))
    if unknown:
        raise InputError(f"unknown stage(s) {unknown}: the stages are {names}")


def _run_stages(
    adata: ad.AnnData,
    store: str | Path,
    stages: list[str] | None,
    force: bool,
    context: Context,
    summary: RunSummary,
) -> ad.AnnData:
    log = context.log
    for stage in STAGES:
        if stages is not None and stage.name not in stages:
            continue
        if stage.record in completed(adata) and not force:
            log(f"{stage.name:<20} already complete, skipped")
            summary.add(stage.name, SKIPPED)
            continue
        start = time.perf_counter()
        try:
            # large task inputs go to the workers as files beside the store (recomputable)
            with scratch_beside(None if is_url(str(store)) else Path(store).resolve()):
                reopened = stage.run(adata, context)
        except BaseException:
            summary.add(stage.name, FAILED, time.perf_counter() - start)
            raise
        if reopened is not None:
            adata = reopened
        seconds = time.perf_counter() - start
        summary.add(stage.name, RUN, seconds)
        log(f"{stage.name:<20} done in {seconds:.1f} s")
    return adata


# --- the stages of "10 minutes to dynamo", in call order ---------------------------------


@register("preprocess")
def _preprocess(adata: ad.AnnData, context: Context) -> None:
    Preprocessor().preprocess_adata(adata, recipe="monocle")


@register("neighbors")
def _neighbors(adata: ad.AnnData, context: Context) -> None:
    neighbors(adata)


@register("reorder")
def _reorder(adata: ad.AnnData, context: Context) -> ad.AnnData | None:
    return reorder_if_spread(adata)


def reorder_if_spread(
    adata: ad.AnnData,
    min_spread: float = REORDER_MIN_SPREAD,
    min_fraction: float = REORDER_MIN_FRACTION,
) -> ad.AnnData | None:
    """Put the cells in a locality order when their kNN neighbourhoods are spread out.

    Measures the neighbourhood chunk spread (:func:`dynadask.io.chunk_spread`: for each
    row chunk, the number of chunks its cells' kNN neighbours lie in, averaged over chunks)
    from ``obsp['distances']``, which reads only the graph's column indices. When it is
    above ``min_spread`` chunks and above ``min_fraction`` of all chunks, every cell-indexed
    element is rewritten in :func:`dynadask.tl.locality_order` (:func:`dynadask.io.reorder`);
    otherwise the rows stay (a store with at most 4 chunks is never reordered: a gather
    reads at most 4 chunks anyway). In random order the spread is close to the number of
    chunks; in a graph locality order it was 3.25 of 8 chunks on pancreas and 7 of 50 on a
    100,000-cell atlas.

    Parameters
    ----------
    adata
        AnnData with a kNN graph (run ``dyn.tl.neighbors`` first).
    min_spread, min_fraction
        The thresholds above.

    Returns
    -------
    anndata.AnnData or None
        The reordered AnnData (the store reopened), or ``None`` when the rows stayed.

    Writes
    ------
    uns['dynadask']['reorder']
        ``reordered``, ``spread_before``, ``spread_after``, ``n_chunks``, ``chunk_cells``
        (and ``method`` when reordered); the stage ``reorder`` is recorded as complete.
    """
    rows = chunk_rows(adata)
    n_chunks = len(chunk_bounds(adata.n_obs, rows)) - 1
    spread = io.chunk_spread(adata, rows)
    if spread > min_spread and spread > min_fraction * n_chunks:
        out = io.reorder(adata)
        out.uns[keys.DYNADASK][keys.REORDER]["reordered"] = True
        io.commit(out, "reorder")
        return out
    record = adata.uns.setdefault(keys.DYNADASK, {})
    record[keys.REORDER] = {
        "reordered": False,
        "chunk_cells": int(rows),
        "n_chunks": int(n_chunks),
        "spread_before": float(spread),
        "spread_after": float(spread),
    }
    io.commit(adata, "reorder")
    return None


@register("moments")
def _moments(adata: ad.AnnData, context: Context) -> None:
    moments(adata)


@register("dynamics")
def _dynamics(adata: ad.AnnData, context: Context) -> None:
    dynamics(adata)


@register("reduceDimension")
def _umap(adata: ad.AnnData, context: Context) -> None:
    reduceDimension(adata)


@register("cell_velocities", record="cell_velocities_umap")
def _velocity_umap(adata: ad.AnnData, context: Context) -> None:
    # dyn.tl.cell_velocities records "cell_velocities" in any basis: each basis's stage
    # records its own name, so the pca stage alone never marks this one complete
    cell_velocities(adata, basis="umap")
    io.commit(adata, "cell_velocities_umap")


@register("cell_velocities_pca", record="cell_velocities_pca")
def _velocity_pca(adata: ad.AnnData, context: Context) -> None:
    cell_velocities(adata, basis="pca")
    io.commit(adata, "cell_velocities_pca")


VF_BASES = ("umap", "pca")
"""The bases the ``vectorfield`` stage learns a field in, as the guide does."""

CALCULUS = ("speed", "divergence", "curl", "acceleration", "curvature")
"""The ``vector_calculus`` stage's quantities, each evaluated in every basis of
:data:`VF_BASES` (``obs['<quantity>_<basis>']``; ``curl_pca`` is the rotation magnitude)."""

JACOBIAN_GENES = 10
"""How many genes :func:`jacobian_genes` picks for the ``jacobian`` stage."""


@register("vectorfield")
def _vectorfield(adata: ad.AnnData, context: Context) -> None:
    for basis in VF_BASES:
        vf.VectorField(adata, basis=basis)
    io.commit(adata, "vectorfield")


@register("topography")
def _topography(adata: ad.AnnData, context: Context) -> None:
    vf.topography(adata, basis="umap")


@register("vector_calculus")
def _vector_calculus(adata: ad.AnnData, context: Context) -> None:
    for basis in VF_BASES:  # one pass over the cells per basis
        vf.vector_calculus(adata, basis=basis, quantities=CALCULUS)
    io.commit(adata, "vector_calculus")


@register("jacobian")
def _jacobian(adata: ad.AnnData, context: Context) -> None:
    genes = list(context.jacobian_genes) or jacobian_genes(adata)
    context.log(f"{'':<20} jacobian genes: {', '.join(genes)}")
    vf.jacobian(adata, regulators=genes, effectors=genes, basis="pca")


def jacobian_genes(adata: ad.AnnData, n: int = JACOBIAN_GENES, Qkey: str = "PCs") -> list[str]:
    """The genes the ``jacobian`` stage uses by default: those the PCA represents best.

    A gene's Jacobian entries are its rows of the PCA loadings applied to the pca field's
    Jacobian, so they carry the gene's dynamics only as far as the principal components
    hold the gene. Genes are ranked by the variance the components capture of them,
    ``sum_k Q[g, k]^2 * explained_variance_ratio_[k]`` over the field's components, among
    the genes with loadings that are ``use_for_dynamics`` with a finite ``gamma``; the top
    ``n`` are returned in var order.

    Parameters
    ----------
    adata
        AnnData with a pca vector field (``uns['VecFld_pca']``) and PCA loadings.
    n
        How many genes.
    Qkey
        The PCA loadings in ``uns`` or ``varm``.

    Returns
    -------
    list of str
        Gene names, in var order.

    Raises
    ------
    dynadask.MissingKeyError
        If there is no pca vector field (run ``dyn.vf.VectorField(adata, basis='pca')``).
    """
    if "VecFld_pca" not in adata.uns:
        raise MissingKeyError(
            "no uns['VecFld_pca']: run dyn.vf.VectorField(adata, basis='pca') (the stage "
            "vectorfield) before choosing the Jacobian's genes"
        )
    d = np.asarray(adata.uns["VecFld_pca"]["X_ctrl"]).shape[1]
    Q, rows = loadings(adata, Qkey, d)
    ratio = np.asarray(adata.uns.get("explained_variance_ratio_", np.ones(d)), dtype=float)[:d]
    score = np.full(adata.n_vars, -np.inf)
    score[rows] = (Q**2) @ ratio
    var = adata.var
    if keys.USE_FOR_DYNAMICS in var:
        score[~var[keys.USE_FOR_DYNAMICS].to_numpy(dtype=bool)] = -np.inf
    if "gamma" in var:
        score[~np.isfinite(var["gamma"].to_numpy(dtype=float))] = -np.inf
    top = np.argsort(-score, kind="stable")[:n]
    return [str(g) for g in adata.var_names[np.sort(top[np.isfinite(score[top])])]]


FATE_CELLS = 50
"""How many initial cells the ``fate`` stage integrates from (see :func:`fate_cells`)."""
FATE_SEED = 0
"""Seed of the ``fate`` stage's draw of initial cells."""


@register("ddhodge", after="topography")
def _ddhodge(adata: ad.AnnData, context: Context) -> None:
    ext.ddhodge(adata, basis="umap")


@register("fate", after="jacobian")
def _fate(adata: ad.AnnData, context: Context) -> None:
    cells, source = fate_cells(adata)
    context.log(f"{'':<20} fate from {len(cells)} cells of {source}")
    pd.fate(adata, cells, basis="umap")


def fate_cells(
    adata: ad.AnnData, n: int = FATE_CELLS, seed: int = FATE_SEED
) -> tuple[list[str], str]:
    """The initial cells of the ``fate`` stage: a seeded sample of the earliest group.

    The groups are the obs column the figures are coloured by (dynamo's ``clusters`` when
    present); the earliest is the one whose median ``obs['umap_ddhodge_potential']`` is
    lowest (the potential increases along the flow, so progenitors sit low). ``n`` of its
    cells (all when it has fewer) are drawn with ``seed`` and returned in obs order. Without
    groups or the potential, ``n`` cells are drawn from all cells. On pancreas the earliest
    group is the Ductal cells, dynamo's own starting point in its fate tutorial.

    Parameters
    ----------
    adata
        AnnData after the ``ddhodge`` stage (or any AnnData: then a sample of all cells).
    n
        How many cells.
    seed
        Seed of the draw.

    Returns
    -------
    tuple of (list of str, str)
        The cell names and a description of where they come from.
    """
    obs = adata.obs
    potential = "umap_ddhodge_potential"
    label = _label_column(adata) if len(obs.columns) else None
    rows = np.arange(adata.n_obs)
    source = "all cells (no groups or no umap_ddhodge_potential)"
    grouped = label is not None and potential in obs and label != "ntr"
    if grouped and not is_float_dtype(obs[label].dtype):
        medians = obs[potential].groupby(obs[label].astype(str), observed=True).median()
        earliest = str(medians.idxmin())
        rows = np.flatnonzero(obs[label].astype(str).to_numpy() == earliest)
        source = f"{label} == {earliest!r} (lowest median {potential})"
    picked = np.random.default_rng(seed).choice(rows, size=min(n, rows.size), replace=False)
    return [str(c) for c in adata.obs_names[np.sort(picked)]], source


@register("figures")
def _figures(adata: ad.AnnData, context: Context) -> None:
    set_figure_params("dynamo", background="white")
    color = _label_column(adata)
    view = figure_data(adata, _top_genes(adata, 4))

    def out(name: str) -> dict:
        save = {"path": str(context.figures / name), "ext": "png", "dpi": 120, "verbose": False}
        return {"save_show_or_return": "save", "save_kwargs": save}

    pl.scatters(view, basis="umap", color=color, **out("umap"))
    pl.streamline_plot(view, basis="umap", color=color, **out("streamline_umap"))
    pl.cell_wise_vectors(view, basis="umap", color=color, **out("cell_wise_vectors_umap"))
    pl.phase_portraits(view, list(view.var_names), color=color, **out("phase_portraits"))
    calculus = [f"{q}_{b}" for b in VF_BASES for q in CALCULUS]
    missing = [k for k in calculus if k not in adata.obs]
    if missing:
        context.log(
            f"{'':<20} vector-field figures left out: no obs {missing[:3]}... "
            "(run the stages vectorfield and vector_calculus)"
        )
    else:
        # the guide's vector-field panels that need no potential and no topography plot
        pl.grid_vectors(view, basis="umap", color="speed_umap", **out("speed_umap"))
        pl.streamline_plot(view, basis="umap", color="divergence_pca", **out("divergence_pca"))
        pl.cell_wise_vectors(
            view, basis="umap", color="acceleration_umap", **out("acceleration_umap")
        )
        det = ["jacobian_det_pca"] if "jacobian_det_pca" in adata.obs else []
        pl.scatters(view, basis="umap", color=calculus + det, ncols=4, **out("vector_calculus"))
    _guide_figures(view, context, color)
    io.commit(adata, "figures")


FIGURE_OBSM = ("X_umap", "velocity_umap", "acceleration_umap")
"""The embeddings and vectors the ``figures`` stage draws (their first two columns)."""
FIGURE_LAYERS = (keys.M_S, keys.M_U, keys.VELOCITY_S)
"""The layers of the phase portraits (the genes' columns only)."""


def figure_data(adata: ad.AnnData, genes: Sequence[str]) -> ad.AnnData:
    """An in-memory AnnData holding what the ``figures`` stage draws, read in one compute.

    ``obs`` and ``uns`` are ``adata``'s own (in memory for a store-backed AnnData); ``obsm``
    holds the first two columns of :data:`FIGURE_OBSM` (those present); the variables are
    ``genes`` only, with their columns of :data:`FIGURE_LAYERS` (those present) as layers.
    The store is read once for all figures: one pass over each layer (all the genes' columns
    of a row block in one task) and over each embedding, in a single Dask compute, instead of
    once per figure.

    Parameters
    ----------
    adata
        The AnnData of the run (in memory or store-backed).
    genes
        The genes of the phase portraits.

    Returns
    -------
    anndata.AnnData
        ``n_obs x len(genes)``, every array a numpy array.
    """
    cols = np.asarray([adata.var_names.get_loc(g) for g in genes], dtype=np.int64)
    items: dict[str, Any] = {}
    for key in FIGURE_OBSM:
        if key in adata.obsm:
            items[f"obsm:{key}"] = take_columns(adata.obsm[key], np.arange(2))
    for layer in FIGURE_LAYERS:
        if layer in adata.layers:
            items[f"layer:{layer}"] = take_columns(adata.layers[layer], cols)
    lazy = {k: v for k, v in items.items() if isinstance(v, da.Array)}
    if lazy:
        items.update(zip(lazy, compute(*lazy.values(), desc="figure data"), strict=True))
    dense = {k: _dense(v) for k, v in items.items()}
    return ad.AnnData(
        obs=adata.obs,
        var=adata.var.iloc[cols],
        obsm={k.removeprefix("obsm:"): v for k, v in dense.items() if k.startswith("obsm:")},
        layers={k.removeprefix("layer:"): v for k, v in dense.items() if k.startswith("layer:")},
        uns=adata.uns,
    )


def _dense(x: Any) -> np.ndarray:
    x = x.toarray() if hasattr(x, "toarray") else x
    return np.asarray(x)


GUIDE_PANEL = "guide_vector_field.png"
"""File of the guide's 2 x 2 vector-field figure in the figure folder."""
GUIDE_KEYS = ("umap_ddhodge_potential", "speed_umap", "divergence_pca", "acceleration_umap")
"""The obs columns the guide's 2 x 2 figure is coloured by, panel by panel."""


def _guide_figures(adata: ad.AnnData, context: Context, color: str) -> None:
    """The guide's 2 x 2 figure (one PNG) and the predicted fates, when their keys exist."""
    import matplotlib.pyplot as plt

    missing = [k for k in GUIDE_KEYS if k not in adata.obs]
    if missing or "Xss" not in adata.uns.get("VecFld_umap", {}):
        what = missing or ["uns['VecFld_umap']['Xss']"]
        context.log(
            f"{'':<20} the guide's 2 x 2 figure left out: no {what} (run the stages "
            "vectorfield, topography, ddhodge and vector_calculus)"
        )
    else:
        fig, axes = plt.subplots(ncols=2, nrows=2, constrained_layout=True, figsize=(12, 10))
        ret = {"save_show_or_return": "return"}
        pl.cell_wise_vectors(
            adata, color=GUIDE_KEYS[0], pointsize=0.1, alpha=0.7, ax=axes[0, 0],
            quiver_length=6, quiver_size=6, **ret,
        )  # fmt: skip
        pl.grid_vectors(
            adata, color=GUIDE_KEYS[1], ax=axes[0, 1], quiver_length=12, quiver_size=12, **ret
        )
        pl.streamline_plot(adata, color=GUIDE_KEYS[2], ax=axes[1, 0], **ret)
        pl.topography(adata, color=GUIDE_KEYS[3], ax=axes[1, 1], **ret)
        context.figures.mkdir(parents=True, exist_ok=True)
        fig.savefig(context.figures / GUIDE_PANEL, dpi=120, facecolor="white")
        plt.close(fig)
    if "fate_umap" in adata.uns:
        save = {"path": str(context.figures / "fate_umap"), "ext": "png", "dpi": 120}
        pl.fate(
            adata,
            basis="umap",
            color=color,
            save_show_or_return="save",
            save_kwargs={**save, "verbose": False},
        )


def _label_column(adata: ad.AnnData) -> str:
    """The obs column to colour cells by: dynamo's ``clusters`` when present."""
    for name in ("clusters", "cell_type", "louvain", "leiden"):
        if name in adata.obs:
            return name
    return "ntr" if "ntr" in adata.obs else adata.obs.columns[0]


def _top_genes(adata: ad.AnnData, n: int) -> list[str]:
    """The ``n`` genes with the best steady-state fit (``gamma_r2``) among those used."""
    var = adata.var
    fit = var["gamma_r2"]
    if keys.USE_FOR_DYNAMICS in var:
        fit = fit.where(var[keys.USE_FOR_DYNAMICS].astype(bool))
    return list(fit.dropna().sort_values(ascending=False).index[:n])
