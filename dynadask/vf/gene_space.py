"""The inputs of a gene-space vector field (``dyn.vf.VectorField(adata, basis=None)``).

dynamo learns a field in gene space from an expression layer ``X`` and a velocity layer
``V`` on the transition genes (``var['use_for_transition']``, or ``genes``), keeping the
genes whose values are finite in every cell. Here both stay lazy cells x genes arrays read
block by block: the fit reads only a seeded sample of rows (:func:`sample_rows`,
:func:`take_rows`), and the field is evaluated one row block at a time.

The expression layer defaults to the first moment the velocity is the time derivative of
(``velocity_S`` -> ``M_s``; scVelo's ``velocity`` -> ``Ms``); dynamo 1.5.3 has no default
(``layer=None`` fails there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph.blocks import map_rows, sum_rows, take_columns
from ..kernels import gene_field as kg

log = logging.getLogger(__name__)

MOMENT_OF = {
    keys.VELOCITY_S: keys.M_S,
    keys.VELOCITY_U: keys.M_U,
    keys.VELOCITY_N: keys.M_N,
    keys.VELOCITY_T: keys.M_T,
    "velocity": "Ms",  # scVelo's names
    "velocity_u": "Mu",
}
"""The expression layer of each velocity layer (the default ``layer``)."""

SCVELO_GENES = "velocity_genes"
"""scVelo's var flag of the genes with velocities (used when ``use_for_transition`` is absent)."""


@dataclass(frozen=True)
class GeneSpace:
    """Lazy expression ``X`` and velocity ``V`` (cells x genes, float64) on ``genes``."""

    X: da.Array
    V: da.Array
    genes: np.ndarray
    cols: np.ndarray
    layer: str
    velocity_key: str


def resolve(
    adata: ad.AnnData, layer: str | None, genes: Any, velocity_key: str, bases: list[str]
) -> GeneSpace:
    """Choose the layers and genes of a gene-space field and drop genes with non-finite values.

    One pass over the two layers counts the non-finite values of each gene.

    Raises
    ------
    ValueError
        A missing velocity or expression layer, unknown genes, no transition genes, no gene
        left with finite values.
    """
    if velocity_key not in adata.layers:
        raise MissingKeyError(
            f"no layers[{velocity_key!r}] for the gene-space field (basis=None): run "
            "dyn.tl.dynamics first or name the velocity layer with velocity_key=, or pass "
            f"basis= one of {bases or ['umap', 'pca']}"
        )
    layer = _layer(adata, layer, velocity_key)
    cols = _genes(adata, genes)
    X = expression(adata, layer, cols)
    V = _dense(take_columns(adata.layers[velocity_key], cols), cols.size)
    bad_x, bad_v = compute(
        sum_rows(kg.nonfinite_columns, X), sum_rows(kg.nonfinite_columns, V), desc="gene space"
    )
    finite = (np.asarray(bad_x) == 0) & (np.asarray(bad_v) == 0)
    if not finite.any():
        raise InputError(
            f"every chosen gene has NaN or infinite values in layers[{layer!r}] or "
            f"layers[{velocity_key!r}]: choose genes with finite velocities (genes=)"
        )
    if not finite.all():
        log.warning(
            "%d gene(s) with non-finite expression or velocity left out of the field",
            int((~finite).sum()),
        )
        keep = np.flatnonzero(finite)
        cols = cols[keep]
        X, V = take_columns(X, keep), take_columns(V, keep)
    names = np.asarray(adata.var_names[cols]).astype(str)
    return GeneSpace(X, V, genes=names, cols=cols, layer=layer, velocity_key=velocity_key)


def _layer(adata: ad.AnnData, layer: str | None, velocity_key: str) -> str:
    if layer is None:
        layer = MOMENT_OF.get(velocity_key)
        if layer is None:
            raise MissingKeyError(
                f"no default expression layer for velocity_key={velocity_key!r}: pass "
                "layer= (the layer whose time derivative the velocities are, e.g. 'M_s')"
            )
    if layer != "X" and layer not in adata.layers:
        hint = "run dyn.tl.moments (or dyn.tl.dynamics)" if layer.startswith("M") else "pass layer="
        raise MissingKeyError(
            f"no layers[{layer!r}] for the gene-space field: {hint}; layers present: "
            f"{sorted(adata.layers)}"
        )
    return layer


def _genes(adata: ad.AnnData, genes: Any) -> np.ndarray:
    """Positions in var of the field's genes (var order)."""
    if genes is not None:
        names = np.atleast_1d(np.asarray(genes)).astype(str)
        missing = names[~np.isin(names, adata.var_names)]
        if missing.size:
            raise InputError(
                f"{missing.size} gene(s) not in var_names, e.g. {list(missing[:5])}: check "
                "the names (adata.var_names)"
            )
        return np.flatnonzero(adata.var_names.isin(names))
    for flag in (keys.USE_FOR_TRANSITION, SCVELO_GENES):
        if flag in adata.var:
            cols = np.flatnonzero(adata.var[flag].to_numpy(dtype=bool))
            if cols.size:
                return cols
    raise MissingKeyError(
        "no transition genes (var['use_for_transition'], or scVelo's var['velocity_genes']): "
        "run dyn.tl.cell_velocities, which selects them, or pass genes="
    )


def expression(adata: ad.AnnData, layer: str, cols: np.ndarray) -> da.Array:
    """Lazy un-logged expression of ``layer`` on columns ``cols`` (dense float64 blocks).

    ``'X'``: ``expm1(X)`` when ``uns['pp']`` records X as log-transformed (as preprocessing
    leaves it), else X as it is. A normalised layer ``X_<layer>`` recorded as logged
    (``layers_norm_method`` 'log1p') is ``expm1``-ed; moments and other layers are taken as
    they are.
    """
    pp = adata.uns.get("pp")
    if layer == "X":
        logged = isinstance(pp, dict) and pp.get("X_norm_method") == "log1p"
        return _dense(take_columns(adata.X, cols), cols.size, expm1=logged)
    logged = (
        layer in keys.FIRST_MOMENTS
        and isinstance(pp, dict)
        and pp.get("layers_norm_method") == "log1p"
    )
    return _dense(take_columns(adata.layers[layer], cols), cols.size, expm1=logged)


def dense_columns(x: Any, cols: np.ndarray) -> da.Array:
    """Lazy dense float64 columns ``cols`` of a cells x genes matrix (sparse or dense)."""
    return _dense(take_columns(x, cols), cols.size)


def _dense(x: Any, n_cols: int, expm1: bool = False) -> da.Array:
    return map_rows(kg.densify, x, n_cols=n_cols, dtype=np.float64, expm1=expm1)


def field_genes(vf: dict) -> np.ndarray:
    """The genes of a gene-space field as a numpy str array (whatever string type a store gave)."""
    return np.array([str(g) for g in np.asarray(vf["genes"]).tolist()], dtype=str)


def field_inputs(adata: ad.AnnData, vf: dict) -> tuple[da.Array, dict[str, Any]]:
    """Cell coordinates and fit of a stored gene-space field ``uns['VecFld']``."""
    genes = field_genes(vf)
    cols = adata.var_names.get_indexer(genes)
    if (cols < 0).any():
        raise InputError(
            f"the gene-space field's genes {list(genes[cols < 0][:5])} are not in var_names: "
            "refit with dyn.vf.VectorField(adata, basis=None)"
        )
    X = expression(adata, str(vf["layer"]), cols)
    fit = {"X_ctrl": np.asarray(vf["X_ctrl"]), "C": np.asarray(vf["C"])}
    fit["beta"] = float(vf["beta"])
    return X, fit


def sample_rows(n: int, n_fit: int | None, seed: int) -> np.ndarray:
    """The sorted rows the fit reads: all ``n``, or a seeded sample of ``n_fit``."""
    if n_fit is None or n <= n_fit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=int(n_fit), replace=False))


def take_rows(*arrays: da.Array, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows ``rows`` of each lazy array, in memory (one compute)."""
    return tuple(np.asarray(a) for a in compute(*(x[rows] for x in arrays), desc="fit rows"))


def outlier_volume(V: np.ndarray, gamma: float = 0.9) -> float:
    """Outlier volume ``a`` at which SparseVFC's first E-step calls a typical cell an inlier.

    At the start (field 0, ``sigma2 = ||V||^2 / (N D)``) a cell whose residual is the mean
    one, ``D sigma2``, gets posterior 1/2: ``log a = D/2 log(2 pi sigma2) + D/2 +
    log((1 - gamma) / gamma)``, capped at 700 (float64). In hundreds of dimensions dynamo's
    ``a = 5`` instead makes the outlier density win for every cell.
    """
    V = np.asarray(V, dtype=np.float64)
    D = V.shape[1]
    sigma2 = max(float(np.sum(V**2)) / max(V.size, 1), 1e-12)
    log_a = 0.5 * D * (np.log(2 * np.pi * sigma2) + 1.0) + np.log((1 - gamma) / gamma)
    return float(np.exp(np.clip(log_a, np.log(5.0), 700.0)))


def bounds(X: da.Array) -> np.ndarray:
    """Two rows: the column minima and maxima of a lazy array (what a grid needs)."""
    lo, hi = compute(da.min(X, axis=0), da.max(X, axis=0), desc="gene-space range")
    return np.vstack([lo, hi])


def place(V: da.Array, cols: np.ndarray, n_vars: int) -> da.Array:
    """Lazy cells x ``n_vars`` float32 layer with ``V`` on ``cols`` and 0 elsewhere."""
    return map_rows(kg.place_columns, V, n_cols=n_vars, dtype=np.float32, cols=cols, width=n_vars)
