"""dynamo's matrix-level moment helpers: ``W @ X`` and ``W @ (X * Y)`` on a cell graph."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from scipy import sparse

from .._core.errors import InputError
from ..graph.moments import Input, smooth_inputs


def _normalise(W: Any) -> Any:  # noqa: N803
    deg = np.asarray(W.sum(1), dtype=np.float64).ravel()
    if np.any(deg == 0):
        raise InputError(
            f"{int(np.sum(deg == 0))} rows of W sum to 0: W cannot be row-normalised; give "
            "every cell at least one neighbour (or pass normalize_W=False)"
        )
    if sparse.issparse(W):
        return sparse.diags(1.0 / deg) @ W
    return np.asarray(W) / deg[:, None]


def _check(W: Any, *xs: Any) -> None:  # noqa: N803
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise InputError(f"W must be a square cells x cells graph (got shape {W.shape})")
    for x in xs:
        if x.shape[0] != W.shape[1]:
            raise InputError(
                f"W has {W.shape[1]} columns but the layer has {x.shape[0]} rows: pass the "
                "graph and the layer of the same cells"
            )


def _product(x: Any, y: Any) -> Any:
    if sparse.issparse(x):
        return sparse.csr_matrix(x.multiply(y))
    if sparse.issparse(y):
        return sparse.csr_matrix(y.multiply(x))
    return np.asarray(x) * np.asarray(y)


def _smooth(W: Any, x: Any, y: Any = None) -> Any:  # noqa: N803
    """``W @ x`` (or ``W @ (x * y)``): exact in memory, lazy row blocks for Dask layers."""
    if isinstance(x, da.Array) or isinstance(y, da.Array):
        inputs = {"x": Input(x)} if y is None else {"x": Input(x), "y": Input(y)}
        jobs = {"m": ("x", None if y is None else "y")}
        return smooth_inputs(sparse.csr_matrix(W), inputs, jobs)["m"]
    out = W @ (x if y is None else _product(x, y))
    return out if sparse.issparse(out) else np.asarray(out)


def calc_1nd_moment(X: Any, W: Any, normalize_W: bool = True) -> Any:  # noqa: N803
    """First moment of a layer on a cell graph: ``W @ X`` (dynamo's name and returns).

    Parameters
    ----------
    X
        cells x genes layer: numpy, scipy sparse or a Dask array (a store's layer), whose
        moment is then built lazily, one task per row block gathering its neighbours' rows
        (float32, as :func:`dynadask.tl.moments` stores moments).
    W
        cells x cells graph (numpy or scipy sparse), e.g. ``adata.obsp['moments_con']``.
    normalize_W
        Divide each row of ``W`` by its sum first.

    Returns
    -------
    numpy.ndarray or scipy.sparse matrix or dask.array.Array, and the row-normalised W
        ``(W @ X, W)`` when ``normalize_W``, else ``W @ X`` (as dynamo returns).

    Raises
    ------
    dynadask.InputError
        If the shapes do not match or a row of ``W`` sums to 0.
    """
    _check(W, X)
    if normalize_W:
        W = _normalise(W)  # noqa: N806
        return _smooth(W, X), W
    return _smooth(W, X)


def calc_2nd_moment(
    X: Any,  # noqa: N803
    Y: Any,  # noqa: N803
    W: Any,  # noqa: N803
    *,
    normalize_W: bool = True,  # noqa: N803
    center: bool = False,
    mX: Any = None,  # noqa: N803
    mY: Any = None,  # noqa: N803
) -> Any:
    """Second moment of two layers on a cell graph: ``W @ (X * Y)`` (dynamo's name).

    Parameters
    ----------
    X, Y
        cells x genes layers (numpy, scipy sparse or Dask, as in :func:`calc_1nd_moment`).
    W
        cells x cells graph.
    normalize_W
        Divide each row of ``W`` by its sum first.
    center
        Subtract ``mX * mY`` (the covariance instead of the raw moment).
    mX, mY
        First moments to subtract; computed as ``W @ X`` and ``W @ Y`` when missing.

    Returns
    -------
    numpy.ndarray or scipy.sparse matrix or dask.array.Array
        The second moment, cells x genes.

    Raises
    ------
    dynadask.InputError
        If the shapes do not match or a row of ``W`` sums to 0.
    """
    _check(W, X, Y)
    if X.shape != Y.shape:
        raise InputError(f"X {X.shape} and Y {Y.shape} must have the same shape")
    if normalize_W:
        W = _normalise(W)  # noqa: N806
    xy = _smooth(W, X, Y)
    if not center:
        return xy
    mX = _smooth(W, X) if mX is None else mX  # noqa: N806
    mY = _smooth(W, Y) if mY is None else mY  # noqa: N806
    if sparse.issparse(xy):
        xy = xy.toarray()
    lazy = any(isinstance(a, da.Array) for a in (xy, mX, mY))
    prod = _product(mX, mY) if not lazy else _dense_lazy(mX) * _dense_lazy(mY)
    prod = prod.toarray() if sparse.issparse(prod) else prod
    return xy - prod


def _dense_lazy(x: Any) -> Any:
    if isinstance(x, da.Array):
        return x
    return np.asarray(x.toarray() if sparse.issparse(x) else x)
