"""``dyn.pd.fate_bias``: which groups of cells the predicted trajectories end among."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd

from .._core import keys
from .._core.errors import InputError, MissingKeyError
from ..graph import fate_bias as gb


def fate_bias(
    adata: ad.AnnData,
    group: str,
    basis: str = "umap",
    *,
    inds: Sequence[int] | None = None,
    use_sink_percentage: bool = True,
    step_used_percentage: float | None = None,
    speed_percentile: float = 5,
    dist_threshold: float | None = None,
    source_groups: str | Sequence[str] | None = None,
    metric: str = "euclidean",
    metric_kwds: dict | None = None,
    cores: int = 1,
    seed: int = 19491001,
    **kwargs: Any,
) -> pd.DataFrame:
    """Fate bias of the trajectories in ``uns['fate_<basis>']``: the groups their ends reach.

    dynamo's rule, for each predicted trajectory: take its slow tail (the last ``max(s, 10)``
    samples, ``s`` the trailing segments no faster than the ``speed_percentile``-th
    percentile of its speeds) and the 30 nearest cells of each tail sample; while none of
    those cells lies within ``dist_threshold`` times the median nearest-cell distance of the
    data, step the tail one sample back (keeping only the nearest cell per sample). The cells
    found are diffused one kNN step (their own 30 nearest cells) and the fate bias is the
    share of each group among the cells reached. ``confidence`` is ``1 - (far + walked) /
    (searched + walked)``: ``far`` of the ``searched`` distances above the threshold, after
    ``walked`` steps back. A trajectory whose tail walks back to its start gets NaN.

    The kNN index is built once over all cells and shared with the workers; the nearest-cell
    distances are queried row block by row block and the trajectories are processed in
    blocks, one task each.

    Departures from dynamo 1.5.3:

    - the kNN search is exact (k-d tree up to 10 dimensions, else ball tree) at every size;
      dynamo switches to NN-descent above 5,000 cells in more than 2 dimensions and to
      hnswlib above 200,000 cells, whose neighbours approximate these;
    - segments with a zero time step (as in ``fate(stitch='dynamo')``'s output) are left out
      of the speed percentile (one that does not move counts as slow); when no segment is
      faster than the percentile, every sample is used (dynamo raises on such paths);
    - ``step_used_percentage`` is honoured with ``use_sink_percentage=False`` (dynamo tests
      it against the type ``float`` and so always uses every sample);
    - every group of a categorical column is a column, 0 where no cell was reached (as in
      dynamo); for other columns too the unreached groups are 0 (dynamo: NaN), in sorted
      order.

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed) with ``obsm['X_<basis>']``, ``obs[group]`` and
        ``uns['fate_<basis>']`` (from :func:`dynadask.pd.fate`).
    group
        obs column of the groups (cell types).
    basis
        The embedding the trajectories were predicted in.
    inds
        Time indices used for every trajectory instead of its slow tail.
    use_sink_percentage
        Use the slow tail (see above).
    step_used_percentage
        With ``use_sink_percentage=False``: the last fraction of the samples (all samples when
        ``None``).
    speed_percentile
        Percentile of a trajectory's segment speeds below which its tail counts as slow.
    dist_threshold
        Multiple of the median nearest-cell distance within which a cell is near a sample
        (default 1).
    source_groups
        Progenitor groups: when their share is strictly between 0 and 1 it moves to the
        largest other group.
    metric, metric_kwds
        Distance of the kNN search (scikit-learn's names) and its parameters.
    cores
        Ignored with a warning: the work runs on the active Dask scheduler.
    seed
        dynamo's NN-descent seed; unused, the search is exact.
    **kwargs
        Further options of :class:`sklearn.neighbors.NearestNeighbors`.

    Returns
    -------
    pandas.DataFrame
        One row per trajectory (indexed by ``init_cells`` when the fate names them): the
        column ``confidence`` and one column per group. Nothing is written to ``adata``.

    Raises
    ------
    ValueError
        No ``obs[group]``, no coordinates or fate for the basis, source groups absent from
        the column, bad options.
    """
    if cores not in (1, None):
        warnings.warn(
            "cores is ignored: dynadask computes on the active Dask scheduler", stacklevel=2
        )
    del seed
    basis, X, P, T = _inputs(adata, group, basis)
    labels = adata.obs[group]
    groups, codes = _codes(labels)
    source = _source(groups, source_groups, group)
    if not 0 <= speed_percentile <= 100:
        raise InputError(f"speed_percentile must lie in [0, 100], not {speed_percentile!r}")
    if step_used_percentage is not None and not 0 < step_used_percentage <= 1:
        raise InputError(
            f"step_used_percentage is a fraction in (0, 1], not {step_used_percentage!r}"
        )
    L = P.shape[2]
    if inds is not None:
        inds = np.atleast_1d(np.asarray(inds, dtype=np.int64))
        if inds.size == 0 or inds.min() < -L or inds.max() >= L:
            raise InputError(f"inds must be time indices in [0, {L}) of the trajectories")
        inds = np.sort(inds % L)
    shares, confidence, _ = gb.bias(
        P,
        T,
        X,
        codes,
        len(groups),
        dist_threshold=1.0 if dist_threshold is None else float(dist_threshold),
        metric=metric,
        metric_kwds=metric_kwds,
        index_kwargs=kwargs,
        source=source,
        inds=inds,
        use_sink_percentage=use_sink_percentage,
        step_used_percentage=step_used_percentage,
        speed_percentile=speed_percentile,
    )
    cells = adata.uns[f"fate_{basis}"].get("init_cells")
    names = [] if cells is None else [str(c) for c in np.asarray(cells).tolist()]
    index = pd.Index(names) if len(names) == len(shares) else pd.RangeIndex(len(shares))
    out = pd.DataFrame(shares, index=index, columns=pd.Index(groups, dtype=object))
    out.insert(0, "confidence", confidence)
    return out


def _inputs(adata: ad.AnnData, group: str, basis: str | None) -> tuple[str, Any, Any, Any]:
    if group not in adata.obs:
        raise MissingKeyError(f"no obs[{group!r}]: pass the obs column of the cell groups")
    if basis is None:
        raise InputError(
            "fate_bias reads trajectories in an embedding: pass basis= (e.g. 'umap' or 'pca')"
        )
    basis = basis[2:] if basis.startswith("X_") else basis
    if keys.basis_key(basis) not in adata.obsm:
        raise MissingKeyError(f"no obsm['X_{basis}']: compute the embedding first")
    fate = adata.uns.get(f"fate_{basis}")
    if fate is None:
        raise MissingKeyError(
            f"no uns['fate_{basis}']: predict the fates first with dyn.pd.fate(adata, "
            f"init_cells, basis={basis!r})"
        )
    X = adata.obsm[keys.basis_key(basis)]
    P, T = (
        v if isinstance(v, da.Array) else np.asarray(v) for v in (fate["prediction"], fate["t"])
    )
    if P.ndim != 3 or T.ndim != 2 or P.shape[0] != T.shape[0] or P.shape[2] != T.shape[1]:
        raise InputError(
            f"uns['fate_{basis}'] holds prediction {P.shape} and t {T.shape}: expected "
            "n x d x L and n x L from dyn.pd.fate"
        )
    if P.shape[1] != X.shape[1]:
        raise InputError(
            f"the trajectories have {P.shape[1]} dimensions but obsm['X_{basis}'] has "
            f"{X.shape[1]}: predict them again in this basis"
        )
    return basis, X, P, T


def _codes(labels: pd.Series) -> tuple[list, np.ndarray]:
    """The groups (categories, or sorted values) and each cell's code (-1: missing)."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        return list(labels.cat.categories), labels.cat.codes.to_numpy().astype(np.int64)
    cat = pd.Categorical(labels)
    return list(cat.categories), np.asarray(cat.codes, dtype=np.int64)


def _source(groups: list, source_groups: Any, group: str) -> np.ndarray | None:
    if source_groups is None:
        return None
    wanted = [source_groups] if isinstance(source_groups, str) else list(source_groups)
    mask = np.isin(np.asarray(groups, dtype=object), np.asarray(wanted, dtype=object))
    if not mask.any():
        raise InputError(
            f"source_groups {wanted} are not groups of obs[{group!r}] (groups: {groups[:10]})"
        )
    return mask
