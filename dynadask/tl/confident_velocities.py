"""Velocities projected through the genes whose velocity agrees with lineage priors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np

from .._core import keys
from .._core.errors import InputError, MissingKeyError
from ..graph.blocks import take_columns
from ..io import commit
from .cell_velocities import cell_velocities
from .confidence_genes import gene_wise_confidence


def confident_cell_velocities(
    adata: ad.AnnData,
    group: str,
    lineage_dict: Mapping[str, str | Sequence[str]],
    *,
    ekey: str = keys.M_S,
    vkey: str = keys.VELOCITY_S,
    basis: str = "umap",
    confidence_threshold: float = 0.85,
    only_transition_genes: bool = False,
) -> ad.AnnData:
    """Project velocities onto ``basis`` through the confidently oriented genes only.

    :func:`gene_wise_confidence` scores each gene against the lineage priors; genes whose
    mean of the progenitor and mature confidences exceeds ``confidence_threshold`` are the
    confident genes, and :func:`cell_velocities` (``enforce=True``) recomputes the
    transition matrix and the embedding velocities from their ``ekey`` / ``vkey`` columns.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData after ``dyn.tl.dynamics`` and an embedding.
    group
        obs column of cell states.
    lineage_dict
        ``{progenitor: terminal group(s)}``.
    ekey, vkey
        Expression and velocity layers.
    basis
        Embedding to project onto.
    confidence_threshold
        Minimal mean confidence of a confident gene.
    only_transition_genes
        Score only ``var['use_for_transition']`` genes (``use_for_dynamics`` otherwise).

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    var['avg_prog_confidence'], var['avg_mature_confidence'], uns['gene_wise_confidence']
        From :func:`gene_wise_confidence`.
    var['avg_confidence'], var['confident_genes']
        The mean confidence, and the confident genes.
    obsp['<method>_transition_matrix'], obsm['velocity_<basis>'], uns['grid_velocity_<basis>']
        From :func:`cell_velocities` on the confident genes (``var['use_for_transition']``
        marks them).

    Raises
    ------
    dynadask.MissingKeyError
        No velocity layer (run ``dyn.tl.dynamics``).
    dynadask.InputError
        No gene passes the threshold.
    """
    if not any(k.startswith("velocity") for k in adata.layers):
        raise MissingKeyError(
            "no velocity layer: run dyn.tl.dynamics(adata) before confident_cell_velocities"
        )
    flag = keys.USE_FOR_TRANSITION if only_transition_genes else keys.USE_FOR_DYNAMICS
    if flag not in adata.var:
        flag = keys.USE_FOR_DYNAMICS
    if flag not in adata.var:
        raise MissingKeyError("var['use_for_dynamics'] is missing: run dyn.tl.dynamics first")
    genes = adata.var_names[adata.var[flag].to_numpy(dtype=bool)]
    gene_wise_confidence(adata, group, lineage_dict, genes=genes, ekey=ekey, vkey=vkey)
    avg = (
        adata.var["avg_prog_confidence"].to_numpy() + adata.var["avg_mature_confidence"].to_numpy()
    ) / 2
    idx = adata.var_names.get_indexer(genes)
    confident = np.zeros(adata.n_vars, dtype=bool)
    confident[idx] = avg[idx] > confidence_threshold
    if not confident.any():
        raise InputError(
            f"no gene has a mean confidence above {confidence_threshold} (highest "
            f"{np.nanmax(avg[idx]):.3f}): lower confidence_threshold"
        )
    cols = np.flatnonzero(confident)
    cell_velocities(
        adata,
        X=take_columns(adata.layers[ekey], cols),
        V=take_columns(adata.layers[vkey], cols),
        X_embedding=adata.obsm[keys.basis_key(basis)],
        basis=basis,
        transition_genes=list(adata.var_names[cols]),
        enforce=True,
    )
    commit(
        adata,
        "confident_cell_velocities",
        var={"avg_confidence": avg, "confident_genes": confident},
    )
    return adata
