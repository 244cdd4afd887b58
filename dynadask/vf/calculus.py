"""Vector calculus on a learned field: speed, divergence, curl, acceleration, curvature.

Every function reads the fit in ``uns['VecFld_<basis>']`` (``X_ctrl``, ``C``, ``beta`` and
``dims``) and the cells' coordinates ``obsm['X_<basis>']``, and evaluates its quantity from
the field's closed-form derivatives, one row block of cells per task (see
:func:`dynadask.graph.vectorfield.quantities`). The defaults of ``basis`` are dynamo's:
``'umap'`` for speed, curl and acceleration, ``'pca'`` for divergence and curvature.
With ``basis=None`` the gene-space field ``uns['VecFld']`` is used, the cells' coordinates
are its expression layer on its genes (read lazily), and the keys have no ``_<basis>``
suffix, as dynamo's. :func:`dynadask.vf.vector_calculus` computes several quantities in one
pass; each function here writes the same keys for its one quantity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import vectorfield as gv
from ..io import commit
from ..kernels import vectorfield as kv
from . import gene_space as gs
from ._record import load_field

_METHODS = ("analytical",)


def _field(adata: ad.AnnData, basis: str | None, method: str) -> tuple[Any, dict[str, Any]]:
    """The cells' coordinates (a lazy or in-memory array) and the fit of ``basis``."""
    if method not in _METHODS:
        raise InputError(
            f"unknown method {method!r}: derivatives are computed analytically ('analytical')"
        )
    if basis is None:
        vf = adata.uns.get("VecFld")
        if not isinstance(vf, dict) or "genes" not in vf:
            raise MissingKeyError(
                "no gene-space field uns['VecFld']: learn it with dyn.vf.VectorField(adata, "
                "basis=None), or pass the basis the field was learned in (e.g. basis='umap')"
            )
        return gs.field_inputs(adata, vf)
    model = load_field(adata, basis)
    X = model.inputs(adata.obsm[keys.basis_key(basis)])
    fit = {"X_ctrl": model.X_ctrl, "C": model.C, "beta": model.beta}
    if X.shape[1] != fit["X_ctrl"].shape[1]:
        raise InputError(
            f"obsm['X_{basis}'] has {X.shape[1]} columns but the field has "
            f"{fit['X_ctrl'].shape[1]}: refit with dyn.vf.VectorField(adata, basis={basis!r})"
        )
    return X, fit


def _quantities(X: Any, fit: dict, names: list[str], formula: int = 2) -> dict[str, Any]:
    return gv.quantities(X, fit["X_ctrl"], fit["C"], fit["beta"], names, formula)


def key(name: str, basis: str | None) -> str:
    """The key of a quantity as dynamo names it: ``<name>_<basis>``, or ``<name>`` in gene space."""
    return name if basis is None else f"{name}_{basis}"


KERNEL_NAMES = {
    "speed": ("speed",),
    "divergence": ("divergence",),
    "curl": ("curl", "rotation"),
    "acceleration": ("acceleration",),
    "curvature": ("curvature",),
    "torsion": ("torsion",),
    "jacobian_det": ("jacobian_det",),
}
"""The kernel quantities (:func:`dynadask.kernels.vectorfield.field_quantities`) each
public quantity is written from."""


def results(
    adata: ad.AnnData,
    basis: str | None,
    name: str,
    q: dict[str, Any],
    *,
    formula: int = 2,
    Qkey: str = "PCs",
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The ``obs``, ``obsm`` and ``layers`` entries of quantity ``name`` from kernel outputs ``q``.

    The one place that decides the keys, shared by the one-quantity functions and the fused
    :func:`dynadask.vf.vector_calculus`.
    """
    k = key(name, basis)
    if name in ("speed", "divergence", "jacobian_det"):
        return {k: q[name]}, {}, {}
    if name == "curl":
        if q["curl"].ndim == 2:  # 3-D: the vector and its norm
            return {k: q["rotation"]}, {k: q["curl"]}, {}
        return {k: q["curl"]}, {}, {}
    if name == "torsion":
        return {k: _row_norms(q["torsion"])}, {k: q["torsion"]}, {}
    if name == "curvature" and formula == 1:
        return {k: q["curvature"]}, {}, {}
    if name in ("acceleration", "curvature"):
        layers = _gene_layer(adata, basis, q[name], Qkey, name)
        return {k: _row_norms(q[name])}, {k: q[name]}, layers
    raise InputError(f"unknown quantity {name!r}: choose from {sorted(KERNEL_NAMES)}")


def _write(
    adata: ad.AnnData,
    basis: str | None,
    name: str,
    X: Any,
    fit: dict,
    *,
    formula: int = 2,
    Qkey: str = "PCs",
) -> None:
    """Evaluate one quantity and commit its keys (the one-quantity functions)."""
    q = _quantities(X, fit, list(KERNEL_NAMES[name]), formula)
    obs, obsm, layers = results(adata, basis, name, q, formula=formula, Qkey=Qkey)
    commit(adata, name, obs=obs, obsm=obsm, layers=layers)


def speed(adata: ad.AnnData, basis: str | None = "umap", *, method: str = "analytical") -> None:
    """Speed ``||f(x)||`` of the learned field at every cell.

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']`` (from :func:`dynadask.vf.VectorField`).
    basis
        The embedding the field was learned in; ``None``: the gene-space field.
    method
        ``'analytical'``: the field itself; ``'numeric'``: the input velocities
        ``obsm['velocity_<basis>']`` (gene space: the field's velocity layer on its genes).

    Writes
    ------
    obs['speed_<basis>']
        The speed.
    """
    if method == "numeric":
        commit(adata, "speed", obs={key("speed", basis): _row_norms(_velocities(adata, basis))})
        return
    X, fit = _field(adata, basis, method)
    _write(adata, basis, "speed", X, fit)


def _velocities(adata: ad.AnnData, basis: str | None) -> Any:
    """The input velocities of the field in ``basis`` (gene space: on the field's genes)."""
    if basis is not None:
        return adata.obsm[keys.velocity_key(basis)]
    _field(adata, None, "analytical")  # checks the field is there
    vf = adata.uns["VecFld"]
    cols = adata.var_names.get_indexer(gs.field_genes(vf))
    return gs.dense_columns(adata.layers[str(vf["velocity_key"])], cols)


def _row_norms(V: Any) -> Any:
    if isinstance(V, da.Array):
        return da.sqrt((V.astype(np.float64) ** 2).sum(axis=1))
    return np.linalg.norm(np.asarray(V, dtype=np.float64), axis=1)


def divergence(
    adata: ad.AnnData,
    cell_idx: Sequence[int] | np.ndarray | None = None,
    sampling: str | None = None,
    *,
    sample_ncells: int = 1000,
    basis: str | None = "pca",
    method: str = "analytical",
    store_in_adata: bool = True,
) -> np.ndarray | None:
    """Divergence ``tr J(x)`` of the learned field at every cell (or at chosen cells).

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']``.
    cell_idx
        Positions (or a boolean mask) of the cells to evaluate; default all of them.
    sampling
        Instead of ``cell_idx``: ``'random'`` or ``'velocity'`` (by speed) picks
        ``sample_ncells`` cells (seed 19491001, as dynamo); ``None`` or ``'all'``: all cells.
    sample_ncells
        Cells to sample.
    basis
        The embedding the field was learned in. As in dynamo, ``'umap'`` always uses all
        cells.
    method
        ``'analytical'``.
    store_in_adata
        Write the values (else return them).

    Returns
    -------
    numpy.ndarray or None
        The divergences at the chosen cells when not ``store_in_adata``.

    Writes
    ------
    obs['divergence_<basis>']
        The divergence (NaN at cells not evaluated, unless an earlier value is there).
    """
    X, fit = _field(adata, basis, method)
    idx = None if basis == "umap" else _cells(adata, cell_idx, sampling, sample_ncells, basis)
    if idx is None:
        div = _quantities(X, fit, ["divergence"])["divergence"]
        if not store_in_adata:
            return np.asarray(compute(div)[0])
        commit(adata, "divergence", obs={key("divergence", basis): div})
        return None
    (x,) = compute(X[idx])
    div = kv.field_quantities(np.asarray(x), fit["X_ctrl"], fit["C"], fit["beta"], ["divergence"])
    if not store_in_adata:
        return div["divergence"]
    name = key("divergence", basis)
    out = (
        np.asarray(adata.obs[name], dtype=float)
        if name in adata.obs
        else np.full(adata.n_obs, np.nan)
    )
    out[idx] = div["divergence"]
    commit(adata, "divergence", obs={name: out})
    return None


def _cells(adata, cell_idx, sampling, n, basis) -> np.ndarray | None:
    if cell_idx is not None:
        idx = np.asarray(cell_idx)
        return np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
    if sampling in (None, "all"):
        return None
    n = min(int(n), adata.n_obs)
    if sampling == "random":
        return np.random.default_rng(19491001).choice(adata.n_obs, size=n, replace=False)
    if sampling == "velocity":
        (V,) = compute(_velocities(adata, basis))
        speed = np.linalg.norm(np.asarray(V, dtype=np.float64), axis=1)
        rng = np.random.default_rng(19491001)
        return rng.choice(adata.n_obs, size=n, p=speed / speed.sum(), replace=False)
    raise InputError(f"unknown sampling {sampling!r}: use None, 'all', 'random' or 'velocity'")


def curl(adata: ad.AnnData, basis: str | None = "umap", *, method: str = "analytical") -> None:
    """Curl of the learned field at every cell.

    In 2-D the scalar ``J_10 - J_01``; in 3-D the curl vector; in other dimensions (where
    dynamo fails) the rotation magnitude ``||J - J^T||_F / sqrt(2)``, which is ``|curl|`` in
    2-D and ``||curl||`` in 3-D.

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']``.
    basis
        The embedding the field was learned in; ``None``: the gene-space field.
    method
        ``'analytical'``.

    Writes
    ------
    obs['curl_<basis>']
        2-D: the curl; 3-D: its norm (dynamo stores sqrt(3) times it, the norm of a 3 x 3
        array holding the vector in each row); other d: the rotation magnitude.
    obsm['curl_<basis>']
        3-D only: the curl vectors (n x 3; dynamo's is n x 3 x 3 with the vector repeated).
    """
    X, fit = _field(adata, basis, method)
    _write(adata, basis, "curl", X, fit)


def torsion(adata: ad.AnnData, basis: str | None = "umap", *, method: str = "analytical") -> None:
    """Torsion of the learned field's trajectories at every cell of a 3-D field.

    dynamo's formula: ``tau = (v a^T)(J a) / ||v a^T||_F^2 = v (a . J a) / (|v|^2 |a|^2)``
    with ``v = f(x)`` and ``a = J v``, a vector along ``v`` (dynamo's outer product
    ``v a^T`` stands where the textbook torsion has the cross product ``v x a``).

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']`` of a 3-D field.
    basis
        The embedding the field was learned in; ``None``: the gene-space field.
    method
        ``'analytical'``.

    Writes
    ------
    obs['torsion_<basis>']
        ``||tau||`` (dynamo stores sqrt(3) times it, the norm of a 3 x 3 array holding the
        vector in each row).
    obsm['torsion_<basis>']
        The torsion vectors (n x 3; dynamo keeps an n x 3 x 3 array in ``uns``).

    Raises
    ------
    ValueError
        If the field is not 3-D (torsion is defined in 3-D only, as in dynamo).
    """
    X, fit = _field(adata, basis, method)
    check_torsion(fit, basis)
    _write(adata, basis, "torsion", X, fit)


def check_torsion(fit: dict, basis: str | None) -> None:
    """Refuse torsion on a field that is not 3-D."""
    d = fit["X_ctrl"].shape[1]
    if d != 3:
        raise InputError(
            f"torsion is defined for 3-D fields; the {basis or 'gene-space'} field has {d} "
            "dimensions: learn a field on a 3-D embedding (e.g. VectorField(adata, "
            "basis=..., dims=3))"
        )


def acceleration(
    adata: ad.AnnData, basis: str | None = "umap", *, Qkey: str = "PCs", method: str = "analytical"
) -> None:
    """Acceleration ``a = J(x) f(x)`` of the learned field at every cell.

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']``.
    basis
        The embedding the field was learned in; ``None``: the gene-space field.
    Qkey
        PCA loadings (``uns`` or ``varm``, genes ``var['use_for_pca']`` x components) that
        take the pca acceleration back to genes.
    method
        ``'analytical'``.

    Writes
    ------
    obs['acceleration_<basis>']
        ``||a||``.
    obsm['acceleration_<basis>']
        ``a`` (n x d).
    layers['acceleration']
        basis pca with loadings ``Qkey`` present: ``a Q^T`` on the ``use_for_pca`` genes, NaN
        on the others (float32, built one row block at a time).
        Gene space (``basis=None``; keys ``obs``/``obsm['acceleration']``): ``a`` on the
        field's genes, NaN on the others (dynamo places it on the ``use_for_pca`` genes,
        which are not the field's).
    """
    X, fit = _field(adata, basis, method)
    _write(adata, basis, "acceleration", X, fit, Qkey=Qkey)


def _gene_layer(adata: ad.AnnData, basis: str | None, vectors: Any, Qkey: str, name: str) -> dict:
    """``{name: vectors Q^T}`` in gene space for basis pca when the loadings are there.

    Gene space (``basis=None``): the vectors placed on the field's genes, NaN elsewhere.
    """
    if basis is None:
        cols = adata.var_names.get_indexer(gs.field_genes(adata.uns["VecFld"]))
        return {name: gv.gene_vectors(vectors, None, cols, adata.n_vars)}
    if basis != "pca" or keys.USE_FOR_PCA not in adata.var:
        return {}
    Q = adata.uns.get(Qkey) if Qkey in adata.uns else adata.varm.get(Qkey)
    genes = np.flatnonzero(adata.var[keys.USE_FOR_PCA].to_numpy(dtype=bool))
    if Q is None:
        return {}
    Q = np.asarray(Q, dtype=np.float64)
    if Q.shape[0] == adata.n_vars and genes.size != adata.n_vars:
        Q = Q[genes]  # loadings stored over all genes (varm)
    d = vectors.shape[1]
    if Q.shape[0] != genes.size or Q.shape[1] < d:
        return {}
    return {name: gv.gene_vectors(vectors, Q[:, :d], genes, adata.n_vars)}


def curvature(
    adata: ad.AnnData,
    basis: str | None = "pca",
    *,
    formula: int = 2,
    Qkey: str = "PCs",
    method: str = "analytical",
) -> None:
    """Curvature of the learned field's trajectories at every cell.

    Formula 2 (default): ``kappa = (a |v|^2 - v (v . a)) / |v|^4`` with ``v = f(x)`` and
    ``a = J v``, a vector; formula 1: ``||v x a|| / |v|^3 = ||a|| / |v|^2`` as dynamo
    computes it (the norm of the outer product).

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']``.
    basis
        The embedding the field was learned in; ``None``: the gene-space field.
    formula
        1 or 2.
    Qkey
        PCA loadings that take the pca curvature vectors back to genes (as for
        :func:`acceleration`).
    method
        ``'analytical'``.

    Writes
    ------
    obs['curvature_<basis>']
        ``||kappa||`` (formula 2) or kappa (formula 1).
    obsm['curvature_<basis>']
        The curvature vectors (formula 2 only).
    layers['curvature']
        basis pca, formula 2, loadings present: ``kappa Q^T`` on the ``use_for_pca`` genes,
        NaN elsewhere (float32).
        Gene space (``basis=None``; keys ``obs``/``obsm['curvature']``), formula 2:
        ``kappa`` on the field's genes, NaN elsewhere.
    """
    if formula not in (1, 2):
        raise InputError(f"curvature formula must be 1 or 2, not {formula!r}")
    X, fit = _field(adata, basis, method)
    _write(adata, basis, "curvature", X, fit, formula=formula, Qkey=Qkey)
