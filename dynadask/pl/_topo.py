"""What the topography figures read: the learned 2-D field and its fixed points and curves.

``dyn.vf.topography`` adds ``Xss``, ``ftype``, ``confidence``, ``fp_ind``, ``xlim``, ``ylim``
and the curves (``NCx``, ``NCy``, ``separatrices``, each also flat as ``<name>_points`` and
``<name>_offsets``) to ``uns['VecFld_<basis>']``. A file written by dynamo and flattened (as
the bundled reference is) keeps them in ``uns['topography_<basis>']``; both are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np

from .._core.errors import InputError
from ..kernels import vectorfield as kv
from . import _data

CURVES = ("NCx", "NCy", "separatrices")


def field(adata: ad.AnnData, basis: str) -> Mapping[str, Any]:
    """Return ``uns['VecFld_<basis>']``, a 2-D SparseVFC fit.

    Raises
    ------
    KeyError
        If it is missing (names ``dyn.vf.VectorField``).
    ValueError
        If the field is not two-dimensional.
    """
    key = f"VecFld_{basis}"
    vf = adata.uns.get(key)
    if not isinstance(vf, Mapping) or not {"X_ctrl", "C", "beta"} <= set(vf):
        raise _data.missing("uns entry", key, f"dyn.vf.VectorField(adata, basis={basis!r})")
    d = np.asarray(vf["X_ctrl"]).shape[1]
    if d != 2:
        raise InputError(
            f"uns[{key!r}] is a {d}-D field: the topography is drawn for a 2-D field, learn "
            "one with dyn.vf.VectorField(adata, basis='umap')"
        )
    return vf


def topography_entry(adata: ad.AnnData, basis: str) -> Mapping[str, Any]:
    """Return the mapping that holds ``Xss`` for ``basis`` (``VecFld_`` or ``topography_``).

    Raises
    ------
    KeyError
        If neither holds fixed points (names ``dyn.vf.topography``).
    """
    for key in (f"VecFld_{basis}", f"topography_{basis}"):
        entry = adata.uns.get(key)
        if isinstance(entry, Mapping) and "Xss" in entry:
            return entry
    raise _data.missing(
        "fixed points",
        f"VecFld_{basis}/Xss",
        f"dyn.vf.topography(adata, basis={basis!r})",
    )


def curves(entry: Mapping[str, Any], name: str, basis: str) -> list[np.ndarray]:
    """The curves ``name`` (``NCx``, ``NCy`` or ``separatrices``) as a list of ``(k, 2)`` arrays.

    Raises
    ------
    KeyError
        If the topography has no such curves (2-D fields only; names ``dyn.vf.topography``).
    """
    flat, offsets = entry.get(f"{name}_points"), entry.get(f"{name}_offsets")
    if flat is not None and offsets is not None:
        flat, offsets = np.asarray(flat, dtype=np.float64), np.asarray(offsets, dtype=np.int64)
        return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True) if b > a]
    stored = entry.get(name)
    if isinstance(stored, Mapping):
        return [np.asarray(stored[k], dtype=np.float64) for k in sorted(stored, key=_as_int)]
    raise _data.missing(
        "curves", f"VecFld_{basis}/{name}", f"dyn.vf.topography(adata, basis={basis!r})"
    )


def _as_int(k: str) -> int | str:
    return int(k) if str(k).isdigit() else k


def limits(vf: Mapping[str, Any], emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``xlim``, ``ylim`` of the topography, else the cells' range widened by 10% each side."""
    if "xlim" in vf and "ylim" in vf:
        return np.asarray(vf["xlim"], dtype=float), np.asarray(vf["ylim"], dtype=float)
    ok = np.isfinite(emb).all(axis=1)
    lo, hi = emb[ok].min(axis=0), emb[ok].max(axis=0)
    pad = 0.1 * (hi - lo)
    return np.array([lo[0] - pad[0], hi[0] + pad[0]]), np.array([lo[1] - pad[1], hi[1] + pad[1]])


def field_on_grid(
    vf: Mapping[str, Any], xlim: np.ndarray, ylim: np.ndarray, n_grid: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The learned field at an ``n_grid`` x ``n_grid`` grid: ``(x axis, y axis, V (2, ny, nx))``.

    ``n_grid**2`` points against the control points: a small array, whatever the cells.
    """
    gx, gy = np.linspace(*xlim, n_grid), np.linspace(*ylim, n_grid)
    xx, yy = np.meshgrid(gx, gy)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    V = kv.evaluate(pts, np.asarray(vf["X_ctrl"]), np.asarray(vf["C"]), float(vf["beta"]))
    return gx, gy, V.T.reshape(2, n_grid, n_grid)
