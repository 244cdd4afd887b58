"""Stationary distributions of the cell transition matrix (dynamo's ``stationary_distribution``)."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np

from .._core.errors import InputError, MissingKeyError
from ..graph.markov import RowBlocked
from ..io import commit
from ..kernels import markov as km

DIRECTIONS = ("both", "forward", "backward")


def _transition_key(adata: ad.AnnData, key: str | None) -> str:
    if key is not None:
        if key not in adata.obsp:
            raise MissingKeyError(f"obsp[{key!r}] is missing: run dyn.tl.cell_velocities first")
        return key
    if "transition_matrix" in adata.obsp:
        return "transition_matrix"
    found = [k for k in adata.obsp if k.endswith("_transition_matrix")]
    if len(found) == 1:
        return found[0]
    if not found:
        raise MissingKeyError(
            "obsp has no transition matrix: run dyn.tl.cell_velocities(adata) first"
        )
    raise InputError(f"several transition matrices in obsp {found}: pass transition_key=...")


def _solve(t: RowBlocked, forward: bool, method: str, tol: float, max_iter: int) -> np.ndarray:
    if forward:
        step = t.left
    else:
        _, cols = t.sums()
        if np.any(cols <= 0):
            raise InputError(
                f"{int(np.sum(cols <= 0))} cells have no incoming transition: the backward "
                "chain is undefined for them"
            )

        def step(p: np.ndarray) -> np.ndarray:
            return t.right(p / cols)

    if method == "kmc":
        return km.stationary_eigs(step, t.n, tol)
    return km.stationary_power(step, t.n, tol, max_iter)


def stationary_distribution(
    adata: ad.AnnData,
    method: str = "kmc",
    direction: str = "both",
    *,
    calc_rnd: bool = True,
    transition_key: str | None = None,
    tol: float = 1e-12,
    max_iter: int = 100_000,
) -> None:
    """Where the cells' random walk on the transition matrix settles (sink) and starts (source).

    ``T = obsp['transition_matrix']`` (else the one ``obsp['<method>_transition_matrix']``
    that ``dyn.tl.cell_velocities`` wrote) has rows as sources. The sink distribution is
    the stationary distribution of the forward chain, ``pi T = pi``; the source distribution
    that of the backward chain, whose step from ``j`` to ``i`` is ``T[i, j] / sum_k T[k, j]``.
    Each is a probability vector (non-negative, sum 1). ``T`` stays in row blocks: each
    product ``v T`` or ``T w`` is one pass over them.

    dynamo 1.5.3 reads only ``obsp['transition_matrix']`` (which its own cell_velocities does
    not write) and takes the right eigenvector of the row-stochastic ``T`` as the sink, which
    is uniform; dynadask returns the left eigenvector for the sink.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData with a transition matrix in ``obsp``.
    method
        ``'kmc'``: sparse eigen solve (ARPACK, largest real part) on the products;
        anything else (dynamo's ``'diffusion'``): power iteration of the lazy chain.
    direction
        ``'both'``, ``'forward'`` (sink only) or ``'backward'`` (source only).
    calc_rnd
        Also for ``obsp['transition_matrix_rnd']`` when it exists (skipped with a warning
        otherwise).
    transition_key
        obsp key of ``T`` (default: see above).
    tol
        Convergence tolerance (ARPACK's, or the L1 change of the power iteration).
    max_iter
        Steps of the power iteration at most.

    Writes
    ------
    obs['sink_steady_state_distribution'], obs['source_steady_state_distribution']
        Per direction; with ``_rnd`` appended for the randomised matrix.

    Raises
    ------
    dynadask.MissingKeyError
        No transition matrix.
    dynadask.InputError
        Unknown direction, or cells without incoming transitions (backward chain).
    """
    if direction not in DIRECTIONS:
        raise InputError(f"unknown direction {direction!r}: use one of {DIRECTIONS}")
    key = _transition_key(adata, transition_key)
    todo = {"": RowBlocked(adata.obsp[key])}
    if calc_rnd:
        if "transition_matrix_rnd" in adata.obsp:
            todo["_rnd"] = RowBlocked(adata.obsp["transition_matrix_rnd"])
        else:
            warnings.warn(
                "obsp['transition_matrix_rnd'] is missing: the randomised distributions are "
                "skipped",
                UserWarning,
                stacklevel=2,
            )
    obs = {}
    for suffix, t in todo.items():
        if direction in ("both", "forward"):
            obs[f"sink_steady_state_distribution{suffix}"] = _solve(t, True, method, tol, max_iter)
        if direction in ("both", "backward"):
            obs[f"source_steady_state_distribution{suffix}"] = _solve(
                t, False, method, tol, max_iter
            )
    commit(adata, "stationary_distribution", obs=obs)
