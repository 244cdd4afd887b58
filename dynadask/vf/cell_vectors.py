"""``dyn.vf.cell_accelerations`` / ``cell_curvatures``: field vectors projected onto an embedding.

The acceleration (or curvature) vectors of the field learned in ``vf_basis`` (a PCA-like
basis) are projected onto the embedding ``basis`` through a transition kernel, as velocities
are by :func:`dynadask.tl.cell_velocities`: the kernel weighs each neighbour's displacement in
``vf_basis`` by its agreement with the cell's vector, and the embedding vector is the weighted
mean displacement in ``basis``.
"""

from __future__ import annotations

from typing import Any

import anndata as ad

from .._core import keys
from .._core.errors import InputError, MissingKeyError

EMBEDDINGS = ("umap", "tsne", "trimap", "ddtree", "diffusion_map")
"""Bases with no linear relation to gene space: a field there is not projected elsewhere."""


def _project(
    adata: ad.AnnData,
    kind: str,
    vf_basis: str,
    basis: str,
    enforce: bool,
    preserve_len: bool,
    other_kernels_dict: dict | None,
    kwargs: dict[str, Any],
) -> None:
    from ..tl.cell_velocities import cell_velocities
    from . import calculus

    vf_basis = keys.basis_name(vf_basis)
    basis = keys.basis_name(basis)
    if vf_basis.lower() in EMBEDDINGS:
        raise InputError(
            f"vf_basis={vf_basis!r} is an embedding: its {kind} vectors are not projected onto "
            f"another one (dyn.vf.{kind}(adata, basis={vf_basis!r}) gives them in "
            f"obsm['{kind}_{vf_basis}']); learn the field in a linear basis such as 'pca'"
        )
    if basis == vf_basis:
        raise InputError(
            f"basis and vf_basis are both {basis!r}: dyn.vf.{kind}(adata, basis={basis!r}) "
            f"writes those vectors (obsm['{kind}_{basis}'])"
        )
    for name in (vf_basis, basis):
        if keys.basis_key(name) not in adata.obsm:
            raise MissingKeyError(
                f"obsm[{keys.basis_key(name)!r}] is missing: run dyn.tl.reduceDimension (or "
                "dyn.pp.pca) first"
            )
    if f"VecFld_{vf_basis}" not in adata.uns:
        raise MissingKeyError(
            f"no uns['VecFld_{vf_basis}']: learn the field first with "
            f"dyn.vf.VectorField(adata, basis={vf_basis!r})"
        )
    vectors = f"{kind}_{vf_basis}"
    if vectors not in adata.obsm:
        getattr(calculus, kind)(adata, basis=vf_basis)
    cell_velocities(
        adata,
        X=adata.obsm[keys.basis_key(vf_basis)],
        V=adata.obsm[vectors],
        X_embedding=adata.obsm[keys.basis_key(basis)],
        basis=basis,
        enforce=enforce,
        preserve_len=preserve_len,
        add_transition_key=f"{kind}_transition_matrix",
        add_velocity_key=f"{kind}_{basis}",
        **{**(other_kernels_dict or {}), **kwargs},
    )


def cell_accelerations(
    adata: ad.AnnData,
    vf_basis: str = "pca",
    basis: str = "umap",
    *,
    enforce: bool = True,
    preserve_len: bool = True,
    other_kernels_dict: dict | None = None,
    **kwargs: Any,
) -> None:
    """Project the field's acceleration at every cell onto an embedding.

    The acceleration ``a = J f`` of the field learned in ``vf_basis`` (computed with
    :func:`dynadask.vf.acceleration` when ``obsm['acceleration_<vf_basis>']`` is missing) is
    projected onto ``basis`` by :func:`dynadask.tl.cell_velocities` with ``X`` the cells in
    ``vf_basis`` and ``V`` their accelerations. dynamo 1.5.3 passes the output key to
    ``cell_velocities`` as a kernel option, which drops it: the projection overwrites
    ``obsm['velocity_<basis>']`` and the velocity transition matrix. dynadask writes them under
    their own keys and leaves the velocity projection as it was.

    Parameters
    ----------
    adata
        AnnData (in memory or opened from a store) with ``uns['VecFld_<vf_basis>']``,
        ``obsm['X_<vf_basis>']``, ``obsm['X_<basis>']`` and a kNN graph.
    vf_basis
        The basis the field was learned in (a linear one: ``'pca'``).
    basis
        The embedding the vectors are projected onto.
    enforce
        Recompute the transition matrix when present (dynamo's default ``True``).
    preserve_len
        Scale each projected vector to the transition-weighted length of the vectors in
        ``vf_basis`` (dynamo's default ``True``).
    other_kernels_dict, **kwargs
        Passed to :func:`dynadask.tl.cell_velocities` (kernel options, ``method``,
        ``n_neighbors``, ...).

    Writes
    ------
    obsm['acceleration_<basis>']
        The projected accelerations (n x 2 for a 2-D embedding).
    obsp['acceleration_transition_matrix']
        The kernel's transition matrix.
    uns['grid_acceleration_<basis>']
        The projected accelerations on a grid.
    obs / obsm['acceleration_<vf_basis>'], layers['acceleration']
        When computed here (see :func:`dynadask.vf.acceleration`).

    Raises
    ------
    ValueError
        ``vf_basis`` an embedding, ``basis == vf_basis``, a missing basis or field; as
        :func:`dynadask.tl.cell_velocities`.
    """
    _project(
        adata, "acceleration", vf_basis, basis, enforce, preserve_len, other_kernels_dict, kwargs
    )


def cell_curvatures(
    adata: ad.AnnData,
    vf_basis: str = "pca",
    basis: str = "umap",
    *,
    enforce: bool = True,
    preserve_len: bool = True,
    other_kernels_dict: dict | None = None,
    **kwargs: Any,
) -> None:
    """Project the field's curvature vector at every cell onto an embedding.

    As :func:`cell_accelerations`, with the curvature vectors of
    :func:`dynadask.vf.curvature` (``obsm['curvature_<vf_basis>']``).

    Parameters
    ----------
    adata, vf_basis, basis, enforce, preserve_len, other_kernels_dict, **kwargs
        As in :func:`cell_accelerations`.

    Writes
    ------
    obsm['curvature_<basis>'], obsp['curvature_transition_matrix'], uns['grid_curvature_<basis>']
        As in :func:`cell_accelerations`.

    Raises
    ------
    ValueError
        As :func:`cell_accelerations`.
    """
    _project(adata, "curvature", vf_basis, basis, enforce, preserve_len, other_kernels_dict, kwargs)
