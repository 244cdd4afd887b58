"""The standard workflow ("10 minutes to dynamo") as named, resumable stages.

Each stage reads what earlier stages left in the store and ends with one commit, which
records it in ``uns['dynadask']['stages']``; a stage already recorded is skipped unless forced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad

from . import io
from ._core import keys


@dataclass(frozen=True)
class Stage:
    """One step of the workflow: ``run(adata)`` commits its results under ``record``."""

    name: str
    run: Callable[[ad.AnnData], None]
    record: str


STAGES: list[Stage] = []


def register(name: str, record: str | None = None) -> Callable:
    """Add a function ``fn(adata)`` to the workflow, in call order (a decorator)."""

    def add(fn: Callable[[ad.AnnData], None]) -> Callable[[ad.AnnData], None]:
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
    for stage in STAGES:
        if stages is not None and stage.name not in stages:
            continue
        if stage.record in completed(adata) and not force:
            log(f"{stage.name:<20} already complete, skipped")
            continue
        start = time.perf_counter()
        stage.run(adata)
        log(f"{stage.name:<20} done in {time.perf_counter() - start:.1f} s")
    return adata
