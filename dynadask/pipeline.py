"""The standard workflow ("10 minutes to dynamo") as named, resumable stages.

Each stage reads what earlier stages left in the store and ends with one commit, which
records it in ``uns['dynadask']['stages']``; a stage already recorded is skipped unless forced.
The stages, in order: ``preprocess`` (monocle recipe and PCA), ``neighbors``, ``moments``,
``dynamics``, ``reduceDimension`` (UMAP), ``cell_velocities`` (UMAP basis),
``cell_velocities_pca`` and ``figures`` (written under the run's figure folder).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad

from . import io
from ._core import keys
from ._core.compute import scratch_beside


@dataclass(frozen=True)
class Context:
    """What a stage may need besides the data: where figures go."""

    figures: Path = Path("figures")


StageFn = Callable[[ad.AnnData, Context], None]


@dataclass(frozen=True)
class Stage:
    """One step of the workflow: ``run(adata, context)`` commits its results under ``record``."""

    name: str
    run: StageFn
    record: str


STAGES: list[Stage] = []


def register(name: str, record: str | None = None) -> Callable[[StageFn], StageFn]:
    """Add a function ``fn(adata, context)`` to the workflow, in call order (a decorator)."""

    def add(fn: StageFn) -> StageFn:
        STAGES.append(Stage(name, fn, record or name))
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
    log: Callable[[str], None] = print,
) -> ad.AnnData:
    """Run the workflow's stages on a store, skipping those already complete.

    Parameters
    ----------
    store
        A store written by :func:`dynadask.io.convert`.
    stages
        Names of the stages to run (default: all, in order).
    force
        Run stages even when the store records them as complete.
    figures
        Folder of the ``figures`` stage (default: ``figures/`` beside the store).
    log
        Where progress lines go.

    Returns
    -------
    anndata.AnnData
        The store, opened lazily, with every stage's results.

    Raises
    ------
    ValueError
        If ``stages`` names a stage that does not exist.
    """
    names = [s.name for s in STAGES]
    unknown = sorted(set(stages or []) - set(names))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}: the stages are {names}")
    adata = io.open(store)
    context = Context(Path(figures) if figures else Path(store).parent / "figures")
    for stage in STAGES:
        if stages is not None and stage.name not in stages:
            continue
        if stage.record in completed(adata) and not force:
            log(f"{stage.name:<20} already complete, skipped")
            continue
        start = time.perf_counter()
        # large task inputs go to the workers as files beside the store (recomputable)
        with scratch_beside(Path(store).resolve()):
            stage.run(adata, context)
        log(f"{stage.name:<20} done in {time.perf_counter() - start:.1f} s")
    return adata


# --- the stages of "10 minutes to dynamo", in call order ---------------------------------


@register("preprocess")
def _preprocess(adata: ad.AnnData, context: Context) -> None:
    from .pp import Preprocessor

    Preprocessor().preprocess_adata(adata, recipe="monocle")


@register("neighbors")
def _neighbors(adata: ad.AnnData, context: Context) -> None:
    from .tl import neighbors

    neighbors(adata)


@register("moments")
def _moments(adata: ad.AnnData, context: Context) -> None:
    from .tl import moments

    moments(adata)


@register("dynamics")
def _dynamics(adata: ad.AnnData, context: Context) -> None:
    from .tl import dynamics

    dynamics(adata)


@register("reduceDimension")
def _umap(adata: ad.AnnData, context: Context) -> None:
    from .tl import reduceDimension

    reduceDimension(adata)


@register("cell_velocities")
def _velocity_umap(adata: ad.AnnData, context: Context) -> None:
    from .tl import cell_velocities

    cell_velocities(adata, basis="umap")


@register("cell_velocities_pca", record="cell_velocities_pca")
def _velocity_pca(adata: ad.AnnData, context: Context) -> None:
    from .tl import cell_velocities

    cell_velocities(adata, basis="pca")
    io.commit(adata, "cell_velocities_pca")


@register("figures")
def _figures(adata: ad.AnnData, context: Context) -> None:
    from . import pl
    from .configuration import set_figure_params

    set_figure_params("dynamo", background="white")
    color = _label_column(adata)

    def out(name: str) -> dict:
        save = {"path": str(context.figures / name), "ext": "png", "dpi": 120, "verbose": False}
        return {"save_show_or_return": "save", "save_kwargs": save}

    pl.scatters(adata, basis="umap", color=color, **out("umap"))
    pl.streamline_plot(adata, basis="umap", color=color, **out("streamline_umap"))
    pl.cell_wise_vectors(adata, basis="umap", color=color, **out("cell_wise_vectors_umap"))
    pl.phase_portraits(adata, _top_genes(adata, 4), color=color, **out("phase_portraits"))
    io.commit(adata, "figures")


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
