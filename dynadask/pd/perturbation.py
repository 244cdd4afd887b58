"""``dyn.pd.perturbation``: in-silico gene perturbation through the field's Jacobian."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import neighbourhood as gnb
from ..graph import transition as gt
from ..graph.blocks import as_rows, map_rows, sum_rows
from ..io import commit
from ..kernels import lap as kl
from ..kernels import perturbation as kp

PROJECTIONS = ("pearson", "cosine")
"""Transition kernels that project the response onto the embedding."""


def perturbation(
    adata: ad.AnnData,
    genes: str | Sequence[str],
    expression: float | Sequence[float] = 10,
    *,
    perturb_mode: str = "raw",
    cells: Sequence[str] | Sequence[int] | None = None,
    zero_perturb_genes_vel: bool = False,
    pca_key: str | np.ndarray | None = None,
    PCs_key: str | np.ndarray | None = None,
    pca_mean_key: str | np.ndarray | None = None,
    basis: str = "pca",
    emb_basis: str = "umap",
    jac_key: str = "jacobian_pca",
    X_pca: np.ndarray | None = None,
    delta_Y: np.ndarray | None = None,
    projection_method: str = "pearson",
    pertubation_method: str = "j_delta_x",
    J_jv_delta_t: float = 1,
    delta_t: float = 1,
    add_delta_Y_key: str | None = None,
    add_transition_key: str | None = None,
    add_velocity_key: str | None = None,
    add_embedding_key: str | None = None,
    n_neighbors: int = 30,
) -> None:
    """Predict how cells respond when genes are set to new values, as dynamo does.

    Each cell's PCA scores ``x`` are mapped to genes (``x Q^T + pca_mean``), the genes are set
    to ``expression`` (``perturb_mode='raw'``) or to ``expression`` standard deviations from
    their mean over the cells (``'z_score'``), and the result is mapped back to scores
    ``x'``. The response is ``delta Y = J(x) (x' - x) delta_t`` (``'j_delta_x'``) with the
    analytic Jacobian of the learned PCA field, or one of dynamo's other
    ``pertubation_method``s. ``delta Y`` is stored in PCA space and in gene space, and
    projected onto ``emb_basis`` through a transition kernel over each cell's neighbourhood
    (as :func:`dynadask.tl.cell_velocities` with ``X=X_pca, V=delta_Y``). Everything runs per
    row block: only the perturbed genes' rows of the loadings are used, never a cells x genes
    matrix.

    Departures from dynamo 1.5.3: the Jacobian-vector products come from the field itself
    (dynamo reads a stored ``d x d`` Jacobian of every cell from ``uns[jac_key]``, the same
    numbers); ``projection_method`` is ``'pearson'`` (default) or ``'cosine'`` (dynamo's
    default ``'fp'`` kernel is not offered); ``zero_perturb_genes_vel`` zeroes the perturbed
    genes' columns (dynamo zeroes columns at their positions among the PCA genes); values in
    ``expression`` follow the order of ``genes``.

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed) with PCA scores, loadings, ``var['use_for_pca']``,
        ``uns['VecFld_<basis>']``, ``obsm['X_<emb_basis>']`` and a kNN graph.
    genes
        Gene(s) to perturb; those outside ``var['use_for_pca']`` are left out.
    expression
        One value for all genes or one per gene (negative values repress).
    perturb_mode
        ``'raw'`` or ``'z_score'``.
    cells
        Names or positions of the cells perturbed (default all; the others respond 0 with
        the ``j_*`` methods).
    zero_perturb_genes_vel
        Set the perturbed genes' own response to 0 in the gene-space layer.
    pca_key, PCs_key, pca_mean_key
        Keys (or arrays) of the scores (``'X_pca'``), loadings (``'PCs'``) and gene means
        (``'pca_mean'``).
    basis
        Basis of the field (``'pca'``).
    emb_basis
        Embedding the response is projected onto.
    jac_key
        dynamo's stored Jacobians; not read (see above).
    X_pca
        Scores to use instead of ``obsm[pca_key]``.
    delta_Y
        A response (cells x d) to store and project instead of computing one.
    projection_method
        ``'pearson'`` or ``'cosine'``.
    pertubation_method
        ``'j_delta_x'``, ``'j_x_prime'`` (``J x'``), ``'j_jv'`` (``J (J (x' - x)
        J_jv_delta_t)``), ``'f_x_prime'`` (``f(x')``) or ``'f_x_prime_minus_f_x_0'``.
    J_jv_delta_t, delta_t
        Time factors of ``'j_jv'`` and of the ``j_*`` methods.
    add_delta_Y_key, add_transition_key, add_velocity_key, add_embedding_key
        Output keys (defaults below).
    n_neighbors
        Neighbours per cell of the projection kernel.

    Writes
    ------
    obsm['<pertubation_method>_perturbation']
        ``delta Y`` (cells x d).
    layers['<pertubation_method>_perturbation']
        ``delta Y Q^T`` on the PCA genes, 0 on the other genes (float32).
    obsp['perturbation_transition_matrix']
        The projection kernel's transition matrix.
    obsm['velocity_<emb_basis>_perturbation'], obsm['X_<emb_basis>_perturbation']
        The projected response and a copy of the embedding.

    Raises
    ------
    ValueError
        Unknown genes or options, missing scores, loadings, field, embedding or kNN graph.
    """
    method = pertubation_method.lower()
    _check(method, perturb_mode, projection_method, jac_key)
    n, use = adata.n_obs, _pca_genes(adata)
    Q, mu = _loadings(adata, PCs_key, pca_mean_key, int(use.sum()))
    x = _scores(adata, X_pca, pca_key)
    if delta_Y is None:
        field, d = _field(adata, basis)
        if x.shape[1] < d:
            raise InputError(f"the scores have {x.shape[1]} columns, the field {d}")
        x = x[:, :d]
        Q = Q[:, :d]
        rows, values = _targets(adata, use, genes, expression)
        e = _levels(x, Q[rows], mu[rows], values, perturb_mode)
        mask = as_rows(_cell_mask(adata, cells).reshape(-1, 1))
        dY = map_rows(
            kp.response,
            x,
            mask,
            n_cols=d,
            dtype=np.float64,
            field=field,
            Q=Q,
            mu_g=mu[rows],
            Q_g=Q[rows],
            e=e,
            method=method,
            delta_t=float(delta_t),
            J_jv_delta_t=float(J_jv_delta_t),
        )
    else:
        dY = as_rows(np.asarray(delta_Y, dtype=np.float64))
        if dY.shape[0] != n:
            raise InputError(f"delta_Y has {dY.shape[0]} rows for {n} cells")
        d = dY.shape[1]
        x, Q = x[:, :d], Q[:, :d]
        rows, _ = _targets(adata, use, genes, expression)
    gene_cols = np.flatnonzero(use)
    zero = gene_cols[rows] if zero_perturb_genes_vel else np.array([], dtype=np.int64)
    layer = map_rows(
        kp.to_genes, dY, n_cols=adata.n_vars, Q=Q, genes=gene_cols, n_genes=adata.n_vars, zero=zero
    )
    emb = _embedding(adata, emb_basis)
    knn = _knn(adata, n_neighbors)
    inp = gt.KernelInputs(x, dY, knn, emb, int(as_rows(x).chunks[0][0]))
    trans, velocity = gt.KERNELS[projection_method](inp, gt.KernelOptions())
    dkey = add_delta_Y_key or f"{pertubation_method}_perturbation"
    vkey = add_velocity_key or f"velocity_{emb_basis}_perturbation"
    ekey = add_embedding_key or f"X_{emb_basis}_perturbation"
    commit(
        adata,
        "perturbation",
        obsm={dkey: dY, vkey: velocity, ekey: emb},
        layers={dkey: layer},
        obsp={add_transition_key or "perturbation_transition_matrix": trans},
    )


def _check(method: str, perturb_mode: str, projection_method: str, jac_key: str) -> None:
    if method not in kp.METHODS:
        raise InputError(f"unknown pertubation_method {method!r}: use one of {kp.METHODS}")
    if perturb_mode not in ("raw", "z_score"):
        raise InputError(f"unknown perturb_mode {perturb_mode!r}: use 'raw' or 'z_score'")
    if projection_method not in PROJECTIONS:
        raise InputError(
            f"projection_method {projection_method!r} is not offered: use one of {PROJECTIONS}"
        )
    if jac_key != "jacobian_pca":
        warnings.warn(
            "jac_key is ignored: the Jacobian-vector products come from the field itself",
            UserWarning,
            stacklevel=3,
        )


def _pca_genes(adata: ad.AnnData) -> np.ndarray:
    if keys.USE_FOR_PCA not in adata.var:
        raise MissingKeyError("no var['use_for_pca']: run dyn.pp.recipe_monocle / dyn.pp.pca first")
    return np.asarray(adata.var[keys.USE_FOR_PCA], dtype=bool)


def _loadings(adata, PCs_key, pca_mean_key, n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    Q = _array(adata, PCs_key, "PCs")
    mu = _array(adata, pca_mean_key, "pca_mean")
    if Q.ndim != 2 or Q.shape[0] != n_genes:
        raise InputError(
            f"the loadings have shape {Q.shape} but var['use_for_pca'] marks {n_genes} genes: "
            "recompute the PCA or pass PCs_key= matching those genes"
        )
    mu = np.broadcast_to(mu, (n_genes,)) if mu.ndim == 0 else mu
    if mu.shape != (n_genes,):
        raise InputError(f"pca_mean has shape {mu.shape}, the loadings {n_genes} genes")
    return Q, np.asarray(mu, dtype=np.float64)


def _array(adata, key, default: str) -> np.ndarray:
    if isinstance(key, np.ndarray):
        return np.asarray(key, dtype=np.float64)
    key = key or default
    if key not in adata.uns:
        raise MissingKeyError(f"no uns[{key!r}]: run dyn.pp.pca first (or pass the array)")
    return np.asarray(adata.uns[key], dtype=np.float64)


def _scores(adata, X_pca, pca_key) -> Any:
    if X_pca is not None:
        x = np.asarray(X_pca, dtype=np.float64)
    elif isinstance(pca_key, np.ndarray):
        x = np.asarray(pca_key, dtype=np.float64)
    else:
        key = pca_key or keys.X_PCA
        if key not in adata.obsm:
            raise MissingKeyError(f"no obsm[{key!r}]: run dyn.pp.pca first (or pass X_pca=)")
        x = adata.obsm[key]
    if x.shape[0] != adata.n_obs:
        raise InputError(f"the scores have {x.shape[0]} rows for {adata.n_obs} cells")
    return x


def _field(adata, basis: str) -> tuple[kl.GaussianField, int]:
    vf = adata.uns.get(f"VecFld_{basis}")
    if vf is None:
        raise MissingKeyError(
            f"no uns['VecFld_{basis}']: learn the field first with dyn.vf.VectorField(adata, "
            f"basis={basis!r})"
        )
    ctrl = np.asarray(vf["X_ctrl"], dtype=np.float64)
    return kl.GaussianField(ctrl, np.asarray(vf["C"]), float(vf["beta"])), ctrl.shape[1]


def _targets(adata, use, genes, expression) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the perturbed genes among the PCA genes, and their values."""
    genes = [genes] if isinstance(genes, str) else list(genes)
    values = np.atleast_1d(np.asarray(expression, dtype=np.float64))
    if values.size not in (1, len(genes)):
        raise InputError(
            f"{values.size} expression values for {len(genes)} genes: give 1 or one each"
        )
    pca_genes = adata.var_names[use]
    pos = pca_genes.get_indexer(genes)
    keep = pos >= 0
    if not keep.any():
        raise InputError(
            f"none of {genes[:5]} is a PCA gene (var['use_for_pca']): perturb genes the PCA used"
        )
    values = np.broadcast_to(values, (len(genes),))[keep]
    return pos[keep], np.array(values)


def _levels(x, Q_g, mu_g, values, perturb_mode: str) -> np.ndarray:
    """The values the genes are set to: raw, or mean + z * standard deviation over cells."""
    if perturb_mode == "raw":
        return values
    (m,) = compute(sum_rows(kp.gene_moments, x, Q_g=Q_g, mu_g=mu_g), desc="perturbed genes")
    count, s1, s2 = m
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
    return values * std + mean


def _cell_mask(adata, cells) -> np.ndarray:
    mask = np.zeros(adata.n_obs, dtype=bool)
    if cells is None:
        mask[:] = True
        return mask
    cells = list(np.atleast_1d(cells))
    found = adata.obs_names.get_indexer([str(c) for c in cells])
    if np.all(found >= 0):
        mask[found] = True
        return mask
    try:
        pos = np.asarray(cells, dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError(f"cells {cells[:5]} are neither cell names nor positions") from None
    if pos.size and (pos.min() < -adata.n_obs or pos.max() >= adata.n_obs):
        raise InputError(f"cell positions must lie in [0, {adata.n_obs})")
    mask[pos] = True
    return mask


def _embedding(adata, emb_basis: str) -> np.ndarray:
    key = keys.basis_key(emb_basis)
    if key not in adata.obsm:
        raise MissingKeyError(f"no obsm[{key!r}]: compute the embedding first (or pass emb_basis=)")
    emb = adata.obsm[key]
    if isinstance(emb, da.Array):
        (emb,) = compute(emb, desc="embedding")
    return np.asarray(emb, dtype=np.float64)


def _knn(adata, k: int) -> np.ndarray:
    record = adata.uns.get("neighbors", {})
    if isinstance(record, dict) and "indices" in record:
        idx = np.asarray(record["indices"])
        if idx.ndim == 2 and idx.shape[0] == adata.n_obs:
            return idx[:, :k].astype(np.int64)
    if keys.DISTANCES not in adata.obsp:
        raise MissingKeyError("no kNN graph (obsp['distances']): run dyn.tl.neighbors first")
    return gnb.self_padded(gnb.knn_from_graph(adata.obsp[keys.DISTANCES], k)[0])
