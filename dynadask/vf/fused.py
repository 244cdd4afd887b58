"""``dyn.vf.vector_calculus``: several vector-calculus quantities in one pass over the cells."""

from __future__ import annotations

from collections.abc import Iterable

import anndata as ad

from .._core.errors import InputError
from ..io import commit
from .calculus import KERNEL_NAMES, _field, _quantities, check_torsion, results

DEFAULT_QUANTITIES = ("speed", "divergence", "curl", "acceleration", "curvature")
"""What :func:`vector_calculus` computes by default (the guide's five quantities)."""


def vector_calculus(
    adata: ad.AnnData,
    basis: str | None = "pca",
    quantities: Iterable[str] = DEFAULT_QUANTITIES,
    *,
    formula: int = 2,
    Qkey: str = "PCs",
    method: str = "analytical",
) -> None:
    """Several vector-calculus quantities of the learned field, in one pass over the cells.

    Each row block of ``obsm['X_<basis>']`` (gene space: of the field's expression layer) is
    read once and every quantity asked for is computed from the same kernel matrix; all
    results are written in one commit. The keys are exactly those of the one-quantity
    functions (:func:`speed`, :func:`divergence`, :func:`curl`, :func:`acceleration`,
    :func:`curvature`, :func:`torsion`, and the ``obs`` column of :func:`jacobian`), and so
    are the values.

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed) with ``uns['VecFld_<basis>']`` (gene space:
        ``uns['VecFld']``).
    basis
        The embedding the field was learned in; ``None``: the gene-space field.
    quantities
        Any of ``'speed'``, ``'divergence'``, ``'curl'`` (2-D: dynamo's scalar, 3-D: the
        vector, other dimensions: the rotation magnitude ``||J - J^T||_F / sqrt 2``),
        ``'acceleration'``, ``'curvature'``, ``'torsion'`` (3-D fields only) and
        ``'jacobian_det'`` (``det J`` at every cell).
    formula
        Curvature formula, 1 or 2 (as :func:`curvature`).
    Qkey
        PCA loadings that take pca acceleration and curvature vectors back to genes.
    method
        ``'analytical'``.

    Writes
    ------
    obs['<quantity>_<basis>'], obsm['<quantity>_<basis>'], layers
        As the one-quantity functions (``jacobian_det`` writes ``obs['jacobian_det_<basis>']``
        for every cell, as :func:`jacobian` with all cells does, and nothing in ``uns``);
        the gene layers of basis pca and of gene space are built one row block at a time.

    Raises
    ------
    ValueError
        An unknown or repeated quantity, no quantity, ``torsion`` on a field that is not
        3-D, a curvature formula other than 1 or 2, no field in ``basis``.
    """
    names = _names(quantities)
    if formula not in (1, 2):
        raise InputError(f"curvature formula must be 1 or 2, not {formula!r}")
    X, fit = _field(adata, basis, method)
    if "torsion" in names:
        check_torsion(fit, basis)
    needed = list(dict.fromkeys(k for n in names for k in KERNEL_NAMES[n]))
    q = _quantities(X, fit, needed, formula)
    obs, obsm, layers = {}, {}, {}
    for name in names:
        o, m, g = results(adata, basis, name, q, formula=formula, Qkey=Qkey)
        obs |= o
        obsm |= m
        layers |= g
    commit(adata, "vector_calculus_pass", obs=obs, obsm=obsm, layers=layers)


def _names(quantities: Iterable[str]) -> list[str]:
    names = [quantities] if isinstance(quantities, str) else list(quantities)
    unknown = sorted(set(names) - set(KERNEL_NAMES))
    if unknown or not names or len(set(names)) != len(names):
        raise InputError(
            f"quantities must be distinct names among {sorted(KERNEL_NAMES)}, not {names}"
            + (f" (unknown: {unknown})" if unknown else "")
        )
    return names
