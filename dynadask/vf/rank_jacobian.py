"""``dyn.vf.rank_jacobian_genes``: genes and gene pairs ranked by their group-mean Jacobian."""

from __future__ import annotations

from functools import partial
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import jacobian as gj
from ..io import commit

MODES = ("full reg", "full eff", "reg", "eff", "int", "switch")


def _transform(J: np.ndarray, *, absolute: bool, switch: bool) -> np.ndarray:
    """Per-cell ``|J|`` and/or the mutual-inhibition product ``J J^T`` where both are < 0."""
    if absolute:
        J = np.abs(J)
    if switch:
        Jt = J.transpose(0, 2, 1)
        J = J * Jt * ((J < 0) & (Jt < 0))
    return J


def _group_labels(adata: ad.AnnData, groups: Any, cells: np.ndarray) -> np.ndarray:
    if groups is None:
        return np.full(cells.size, "all", dtype=object)
    if isinstance(groups, str):
        if groups not in adata.obs:
            raise MissingKeyError(
                f"no obs[{groups!r}]: pass an obs column with the cell groups (e.g. "
                f"{list(adata.obs.columns[:3])}) or an array of one label per cell"
            )
        labels = adata.obs[groups].to_numpy()
    else:
        labels = np.asarray(groups)
        if labels.shape[0] != adata.n_obs:
            raise InputError(f"groups has {labels.shape[0]} labels, expected {adata.n_obs}")
    return np.asarray(labels, dtype=object)[cells]


def group_means(
    adata: ad.AnnData,
    jkey: str,
    groups: Any,
    *,
    absolute: bool,
    normalize: bool,
    switch: bool,
    array: str = "jacobian_gene",
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Mean per group of the (transformed) per-cell gene Jacobians, in one pass.

    Returns the means by group (in order of first appearance), the effector and the
    regulator names.
    """
    entry = adata.uns.get(jkey)
    if entry is None or array not in entry:
        raise MissingKeyError(
            f"no uns[{jkey!r}][{array!r}]: run dyn.vf.jacobian(adata, regulators=..., "
            "effectors=...) first"
        )
    J = entry[array]
    cells = entry["cell_idx"]
    (cells,) = compute(cells) if isinstance(cells, da.Array) else (cells,)
    labels = _group_labels(adata, groups, np.asarray(cells))
    names = pd.unique(labels)
    codes = pd.Index(names).get_indexer(labels)
    transform = partial(_transform, absolute=absolute, switch=switch)
    sums, absmax = gj.group_sums(J, codes, len(names), transform)
    (s, jmax) = compute(sums, absmax)
    shape = tuple(J.shape[1:])
    scale = np.ones(shape)
    if normalize:
        scale = np.asarray(jmax, dtype=np.float64)
        scale = scale * scale.T if switch else scale
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {
            str(g): s["sum"][i].reshape(shape) / s["count"][i] / scale for i, g in enumerate(names)
        }
    return means, np.asarray(entry["effectors"]), np.asarray(entry["regulators"])


def _sorted(values: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(values)[::-1]
    return names[order], values[order]


def _table(J: np.ndarray, items: np.ndarray, names: np.ndarray, values: bool) -> pd.DataFrame:
    table: dict[str, Any] = {}
    for i, item in enumerate(items):
        top, vals = _sorted(J[i], names)
        table[str(item)] = top
        if values:
            table[f"{item}_values"] = vals
    return pd.DataFrame(table)


def _masked_diagonal(J: np.ndarray, eff: np.ndarray, reg: np.ndarray) -> np.ndarray:
    J = J.astype(np.float64, copy=True)
    J[eff[:, None] == reg[None, :]] = np.nan
    return J


def _interactions(J, eff, reg, exclude_diagonal):
    order = np.argsort(J, axis=None)[::-1]
    rows, cols = np.unravel_index(order, J.shape)
    keep = ~(exclude_diagonal & (eff[rows] == reg[cols]))
    pairs = [f"{eff[r]} - {reg[c]}" for r, c in zip(rows[keep], cols[keep], strict=True)]
    return pairs, J[rows[keep], cols[keep]]


def _rank(mode, means, eff, reg, exclude_diagonal, values):
    if mode == "full reg":
        return {g: _table(J, eff, reg, values) for g, J in means.items()}
    if mode == "full eff":
        return {g: _table(J.T, reg, eff, values) for g, J in means.items()}
    out: dict[str, Any] = {}
    for g, J in means.items():
        if mode in ("reg", "eff"):
            J = _masked_diagonal(J, eff, reg) if exclude_diagonal else J
            axis, names = (0, reg) if mode == "reg" else (1, eff)
            with np.errstate(invalid="ignore"):
                top, vals = _sorted(np.nanmean(J, axis=axis), names)
        else:
            top, vals = _interactions(J, eff, reg, exclude_diagonal)
        out[g] = top
        if values:
            out[f"{g}_values"] = vals
    return pd.DataFrame(out)


def rank_jacobian_genes(
    adata: ad.AnnData,
    groups: Any = None,
    jkey: str = "jacobian_pca",
    *,
    abs: bool = False,  # noqa: A002 - dynamo's name
    mode: str = "full reg",
    exclude_diagonal: bool = False,
    normalize: bool = False,
    return_df: bool = False,
    output_values: bool = True,
) -> Any:
    """Rank genes or gene pairs by their mean Jacobian in each cell group.

    The per-cell gene Jacobians of :func:`dynadask.vf.jacobian` are averaged per group in
    one pass over their row blocks (they may stay in a store).

    Parameters
    ----------
    adata
        AnnData after :func:`dynadask.vf.jacobian` with genes.
    groups
        An obs column (or one label per cell) grouping the cells; ``None``: one group
        ``'all'``.
    jkey
        The ``uns`` entry of the Jacobians.
    abs
        Rank ``|J|``.
    mode
        ``'full reg'``: for each effector, regulators by ``J[eff, reg]``; ``'full eff'``:
        for each regulator, effectors; ``'reg'``: regulators by their mean over effectors;
        ``'eff'``: effectors by their mean over regulators; ``'int'``: effector-regulator
        pairs; ``'switch'``: pairs by ``J_ij J_ji`` where both are negative (mutual
        inhibition; needs the same regulators and effectors).
    exclude_diagonal
        Leave out self-regulation (an effector that is also the regulator).
    normalize
        Divide each Jacobian element by its largest ``|J|`` over the cells first.
    return_df
        Return the result instead of writing it.
    output_values
        Add a ``<name>_values`` column beside each ranking.

    Returns
    -------
    dict or pandas.DataFrame or None
        With ``return_df``: for ``full reg``/``full eff`` a data frame per group, else one
        data frame with a column (and a values column) per group.

    Writes
    ------
    uns[mode]
        The result (dynamo's key: the mode's name, e.g. ``uns['full reg']``).

    Raises
    ------
    ValueError
        Unknown mode, no stored Jacobians, unknown groups, ``'switch'`` with regulators
        other than the effectors.
    """
    mode = mode.replace("_", " ")
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: use one of {MODES}")
    entry = adata.uns.get(jkey, {})
    if mode == "switch" and list(entry.get("regulators", [])) != list(entry.get("effectors", [])):
        raise InputError("mode 'switch' needs the same regulators and effectors (J_ij and J_ji)")
    means, eff, reg = group_means(
        adata, jkey, groups, absolute=abs, normalize=normalize, switch=mode == "switch"
    )
    result = _rank(mode, means, eff, reg, exclude_diagonal, output_values)
    if return_df:
        return result
    commit(adata, "rank_jacobian_genes", uns={mode: result})
    return None
