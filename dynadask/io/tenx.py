"""Readers for Cell Ranger outputs: the filtered ``.h5`` file (v3) and an mtx folder."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
from scipy import sparse

from .._core.errors import InputError


def read_10x_h5(filename: str | Path) -> ad.AnnData:
    """Read a Cell Ranger (v3 or later) feature-barcode ``.h5`` matrix.

    Parameters
    ----------
    filename
        The ``filtered_feature_bc_matrix.h5`` (or raw) file.

    Returns
    -------
    anndata.AnnData
        Cells x features counts (CSR), ``var['gene_ids']`` and ``var['feature_types']``.

    Raises
    ------
    ValueError
        If the file has no ``matrix`` group (older Cell Ranger v2 files keep one group a genome).
    """
    with h5py.File(filename, "r") as f:
        if "matrix" not in f:
            raise InputError(
                f"{filename} has no 'matrix' group: only Cell Ranger v3+ .h5 files are read; "
                "convert a v2 file with Cell Ranger or read its mtx folder"
            )
        m = f["matrix"]
        n_features, n_cells = (int(v) for v in m["shape"][()])
        # stored as features x cells in CSC, i.e. cells x features in CSR
        X = sparse.csr_matrix(
            (m["data"][()], m["indices"][()], m["indptr"][()]), shape=(n_cells, n_features)
        )
        feats = m["features"]
        var = pd.DataFrame(
            {
                "gene_ids": _str(feats["id"][()]),
                "feature_types": _str(feats["feature_type"][()]),
            },
            index=_str(feats["name"][()]),
        )
        obs = pd.DataFrame(index=_str(m["barcodes"][()]))
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)
    adata.var_names_make_unique()
    return adata


def read_10x_mtx(path: str | Path) -> ad.AnnData:
    """Read a Cell Ranger mtx folder (``matrix.mtx[.gz]``, ``barcodes.tsv[.gz]``, features).

    Parameters
    ----------
    path
        The folder (``filtered_feature_bc_matrix/``).

    Returns
    -------
    anndata.AnnData
        Cells x genes counts (CSR) with ``var['gene_ids']``.

    Raises
    ------
    FileNotFoundError
        If the folder lacks the matrix, barcodes or features/genes file.
    """
    path = Path(path)
    mtx = _find(path, "matrix.mtx")
    barcodes = pd.read_csv(_find(path, "barcodes.tsv"), header=None, sep="\t")[0]
    try:
        genes = pd.read_csv(_find(path, "features.tsv"), header=None, sep="\t")
    except FileNotFoundError:
        genes = pd.read_csv(_find(path, "genes.tsv"), header=None, sep="\t")
    X = sparse.csr_matrix(scipy.io.mmread(mtx).T, dtype=np.float32)
    name_col = 1 if genes.shape[1] > 1 else 0
    var = pd.DataFrame(
        {"gene_ids": genes[0].astype(str).values}, index=genes[name_col].astype(str).values
    )
    adata = ad.AnnData(X=X, obs=pd.DataFrame(index=barcodes.astype(str).values), var=var)
    adata.var_names_make_unique()
    return adata


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{folder} has no {name} or {name}.gz: is it a Cell Ranger mtx folder?")


def _str(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])
