"""dynamo's per-gene Gini coefficient (``calc_Gini``), exact and out of core."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import gini as ggini
from ..kernels import gini as kgini
from ._inputs import fit_cells
from ._pending import Pending

MAX_VALUES = 2**23
"""Non-zero values gathered per pass at most (about 100 MB on one worker)."""
_NOT_LAYERS = ("matrix", "ambiguous", "spanning")


def available_layers(adata: ad.AnnData, layers: str | list[str] = "all") -> list[str]:
    """Dynamo's layer list: every layer not named ``X_*`` (nor matrix/ambiguous/spanning), X.

    A list keeps the names among those (``'X'`` included); a single name is one layer.

    Raises
    ------
    dynadask.MissingKeyError
        If a named layer is neither X nor in ``adata.layers``.
    """
    present = [n for n in adata.layers if not n.startswith("X_") and n not in _NOT_LAYERS]
    present += ["X"] if adata.X is not None else []
    if layers == "all":
        return present
    wanted = [layers] if isinstance(layers, str) else list(layers)
    missing = [n for n in wanted if n != "X" and n not in adata.layers]
    if "X" in wanted and adata.X is None:
        missing.append("X")
    if missing:
        raise MissingKeyError(
            f"layer(s) {missing} not in this AnnData (layers: {sorted(adata.layers)}, "
            f"X {'absent' if adata.X is None else 'present'})"
        )
    return wanted


def layer_data(adata: ad.AnnData, name: str) -> Any:
    """X (``name='X'``) or ``adata.layers[name]``."""
    return adata.X if name == "X" else adata.layers[name]


def gini_of(
    arrays: Mapping[str, Any], cells: np.ndarray | None = None, max_values: int = MAX_VALUES
) -> dict[str, np.ndarray]:
    """Dynamo's per-gene Gini coefficient of each matrix, exact.

    One pass sums each gene and counts its non-zero values; then each gene's non-zero
    values, gathered in batches of at most ``max_values``, are ranked (one pass per batch).

    Parameters
    ----------
    arrays
        Cells x genes matrices by name (numpy, scipy sparse or Dask).
    cells
        Boolean mask of the cells the coefficients run over (all when ``None``).
    max_values
        Non-zero values gathered per pass at most.
    """
    names = list(arrays)
    summaries = compute(*[ggini.summary(arrays[k], cells) for k in names], desc="gini sums")
    out = {}
    for name, got in zip(names, summaries, strict=True):
        n = float(got["n"][0])
        if n == 0:
            raise InputError("no cells to compute the Gini coefficient over")
        zeros = n - got["nnz"]
        numerator = np.zeros(got["sum"].size)
        for cols in kgini.batches(got["nnz"], max_values):
            lazy = ggini.numerators(arrays[name], cols, zeros[cols], n, cells)
            (numerator[cols],) = compute(lazy, desc=f"gini of {name}")
        out[name] = kgini.gini(numerator, got["sum"], n, float(got["min"][0]))
    return out


def calc_Gini(  # noqa: N802 - dynamo's name
    adata: ad.AnnData, layers: str | list[str] = "all"
) -> ad.AnnData:
    """Gini coefficient of each gene's values over the cells, in X and each raw layer.

    As dynamo: values are shifted by ``1e-7 - m`` (``m`` the smallest value of the matrix)
    and, sorted per gene, give ``sum_i (2 i - n - 1) x_i / (n sum_i x_i)``. Exact, without
    sorting a gene's column in one place: one pass over the row blocks sums each gene and
    counts its non-zero values, then the non-zero values of batches of genes (at most
    ``MAX_VALUES`` each) are gathered and ranked, their zeros placed by count. On a store,
    cells flagged ``False`` in ``obs['pass_basic_filter']`` are left out (an in-memory
    AnnData has dropped them).

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    layers
        ``'all'`` (X and every layer not named ``X_*``), one layer name or a list of them
        (``'X'`` for X).

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    var['<layer>_gini'] for each layer (``var['X_gini']`` for X)

    Raises
    ------
    dynadask.MissingKeyError
        If a named layer is absent.
    """
    names = available_layers(adata, layers)
    values = gini_of({n: layer_data(adata, n) for n in names}, fit_cells(adata))
    Pending(var={f"{n}_gini": v for n, v in values.items()}).commit(adata, "gini")
    return adata
