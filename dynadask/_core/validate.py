"""Checks at the entry of public functions, cheap on a million cells.

They read metadata (names, shapes, obs columns, the keys present) and at most one row block
of a count layer, never the whole matrix: a wrong input is answered before the expensive
part. Full checks of every value happen inside the passes that read the data anyway (the
QC pass checks every block's counts, ``kernels/preprocess.check_counts``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .errors import CountsError, InputError, MissingKeyError


def unique_names(adata: Any) -> None:
    """Raise :class:`InputError` when cell or gene names repeat (results would be ambiguous).

    Raises
    ------
    dynadask.InputError
        Naming the first repeated names and the call that makes them unique.
    """
    for what, names, fix in (
        ("cell", adata.obs_names, "adata.obs_names_make_unique()"),
        ("gene", adata.var_names, "adata.var_names_make_unique()"),
    ):
        index = pd.Index(names)
        if index.is_unique:
            continue
        repeated = index[index.duplicated()].unique()
        raise InputError(
            f"{len(repeated)} {what} name(s) occur more than once (e.g. "
            f"{list(repeated[:3])}): results are written by name, so make them unique "
            f"first with {fix}"
        )


def enough_cells(n_cells: int, n_neighbors: int, arg: str = "n_neighbors") -> None:
    """Raise :class:`InputError` when a neighbourhood of ``n_neighbors`` cells cannot exist.

    Raises
    ------
    dynadask.InputError
        If there are fewer cells than ``n_neighbors`` (the cell counts itself).
    """
    if n_cells < n_neighbors:
        raise InputError(
            f"{arg}={n_neighbors} but the data have only {n_cells} cells: pass "
            f"{arg}={max(n_cells, 2)} or less, or use more cells"
        )


def positive_int(value: Any, arg: str, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer of at least ``minimum``.

    Raises
    ------
    dynadask.InputError
        Naming the argument.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{arg} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def require(container: Any, key: str, where: str, fix: str) -> None:
    """Raise :class:`MissingKeyError` when ``key`` is not in ``container``.

    Parameters
    ----------
    container
        ``adata.layers``, ``adata.obs``, ``adata.obsm``, … (anything with ``in``).
    key
        The key.
    where
        How the message names the container (``'layers'``, ``'obs'``, …).
    fix
        What to run to make the key (a sentence starting with a verb).
    """
    if key not in container:
        have = sorted(map(str, getattr(container, "keys", lambda: [])()))[:12]
        raise MissingKeyError(f"{where}[{key!r}] is missing (have {have}): {fix}")


def varied_time(adata: Any, tkey: str, experiment: str) -> None:
    """Raise :class:`InputError` when a time-course experiment has a single labelling time.

    Raises
    ------
    dynadask.InputError
        If ``obs[tkey]`` takes one value and ``experiment`` needs several (kin, deg).
    """
    values = pd.unique(np.asarray(adata.obs[tkey]))
    if len(values) < 2 and experiment in ("kin", "deg"):
        raise InputError(
            f"experiment_type={experiment!r} fits a time course but obs[{tkey!r}] has the "
            f"single value {values[0]}: pass the column with each cell's labelling time, "
            "or experiment_type='one-shot' for one labelling time"
        )


def first_block(x: Any) -> Any:
    """The first row block of ``x`` in memory (one chunk read for a Dask array)."""
    if hasattr(x, "blocks") and hasattr(x, "chunks"):
        return x.blocks[0].compute() if x.numblocks[0] else np.zeros((0, x.shape[1]))
    return x


def sample_counts(x: Any, name: str) -> None:
    """Check that a count layer holds counts, on its first row block (or all of it in memory).

    NaN, infinite or negative values raise; non-integer values warn (estimated counts are
    fractional). Every other block is checked by the QC pass that reads it.

    Raises
    ------
    dynadask.CountsError
        If the values checked are not finite or negative.
    """
    block = first_block(x)
    values = block.data if sparse.issparse(block) else np.asarray(block)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        raise CountsError(
            f"{name} holds NaN or infinite values: preprocessing needs raw counts; "
            "replace them (e.g. with 0) before calling the recipe"
        )
    if values.min() < 0:
        raise CountsError(
            f"{name} holds negative values: preprocessing needs raw, non-negative counts "
            "(was the layer already scaled or centred?)"
        )
    if not np.array_equal(values, np.round(values)):
        warnings.warn(
            f"{name} holds non-integer values: preprocessing expects raw counts (fine for "
            "estimated counts; not for a normalised or log-transformed layer)",
            stacklevel=3,
        )


def same_shape(**arrays: Any) -> None:
    """Raise :class:`InputError` when the given arrays (``None`` skipped) differ in shape.

    Raises
    ------
    dynadask.InputError
        Naming each array's shape.
    """
    shapes = {
        k: tuple(np.shape(v) if not hasattr(v, "shape") else v.shape)
        for k, v in arrays.items()
        if v is not None
    }
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise InputError(
            f"{listed}: these must be cells x genes arrays of one shape (the same cells and "
            "genes, in the same order)"
        )
