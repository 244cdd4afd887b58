"""Size factors, size-factor normalisation of every count layer, and log1p.

As in dynamo, ``X`` holds what ``uns['pp']`` says of it: divided by ``obs['Size_Factor']``
once ``X_normalized`` is recorded, log-transformed once ``X_norm_method`` is ``'log1p'``
(the commit that records a transform writes the transformed X, lazily on a store). Every
other raw layer is kept and written normalised under dynamo's names (``X_spliced``, …),
sparse.

Which size factor divides which layer
-------------------------------------
Conventional data (spliced / unspliced, no labelling layers): every layer is divided by its
own size factor (``obs['<layer>_Size_Factor']``), as dynamo does.

Labelling data (``new`` and ``total``, or ``uu, ul, su, sl``): every layer that is a part of
the total RNA (``new``, ``total``, ``uu``, ``ul``, ``su``, ``sl``, and ``spliced`` /
``unspliced`` when present) is divided by the cell's **total-RNA** size factor
(``obs['total_Size_Factor']``, from the summed total layers). One factor per cell keeps every
ratio between the layers (new / total, labelled / unlabelled) what it was in the counts. A
layer's own size factor would not: the new RNA's library size grows with the labelling time
(and shrinks with the chase), so dividing ``new`` by it removes the very trend in time that
the kinetic rates are fitted on (on kin data labelled for 1 to 8 hours, gamma came out about
20 times too large). ``X`` keeps ``obs['Size_Factor']`` (it is only used for gene selection
and PCA) unless ``X_total_layers``.

``size_factor_per_layer=True`` restores dynamo 1.5.3's rule (each layer by its own factor, a
total factor only when ``total_szfactor`` is named) for parity checks; it is not the default
because it biases the labelling rates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.errors import InputError, MissingKeyError
from ..graph.preprocess import log1p_layer, scaled
from ._inputs import fit_cells, raw_layers, total_layers
from ._pending import Pending
from .gene_selection import transformed_X
from .qc import QCSums, qc_pass

_LOCATIONS: dict[str, Callable[[np.ndarray, Callable], float]] = {
    "median": lambda t, f: float(np.nanmedian(t)),
    "mean": lambda t, f: float(np.nanmean(t)),
    "mean-geometric-mean-total": lambda t, f: float(np.exp(f(np.log(t)))),
    "geometric": lambda t, f: float(np.exp(f(np.log(t)))),
}
TOTAL_SIZE_FACTOR = "total_Size_Factor"
# layers that are parts of the total RNA: with labelling layers present they share its factor
TOTAL_RNA_PARTS = ("new", "total", "uu", "ul", "su", "sl", "spliced", "unspliced")


def initial_size_key(layer: str) -> str:
    """Return the obs column of a layer's initial cell size (``initial_cell_size`` for X)."""
    return "initial_cell_size" if layer == "X" else f"initial_{layer}_cell_size"


def size_factors_from_totals(
    totals: np.ndarray,
    method: str = "median",
    scale_to: float | None = None,
    locfunc: Callable = np.nanmean,
    kept: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Size factors ``total / location(totals)`` (zero totals count as 1; non-finite -> 1).

    The location runs over the cells in ``kept`` (boolean mask; all when ``None``).
    Returns the size factors and the cell totals used.
    """
    if method not in _LOCATIONS:
        raise InputError(f"unknown size-factor method {method!r}: use one of {sorted(_LOCATIONS)}")
    total = np.asarray(totals, dtype=np.float64).copy()
    total[total == 0] = 1
    located = total if kept is None else total[np.asarray(kept, dtype=bool)]
    location = scale_to if scale_to is not None else _LOCATIONS[method](located, locfunc)
    with np.errstate(divide="ignore", invalid="ignore"):
        sf = total / location
    sf[~np.isfinite(sf)] = 1
    return sf, total


def size_factor_columns(
    qc: QCSums,
    layers: list[str],
    total: list[str] | None = None,
    **options: Any,
) -> dict[str, np.ndarray]:
    """Return obs ``<layer>_Size_Factor`` and ``initial_<layer>_cell_size`` from QC totals.

    With ``total`` (labelling data) the summed layers give ``total_Size_Factor`` and
    ``initial_total_cell_size``. Locations run over the cells ``qc.kept``.
    """
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        sf, cells = size_factors_from_totals(qc.total_of(layer), kept=qc.kept, **options)
        out[keys.size_factor_key(layer)], out[initial_size_key(layer)] = sf, cells
    if total and set(total) <= set(qc.names):
        summed = sum(qc.total_of(n) for n in total)
        sf, cells = size_factors_from_totals(summed, kept=qc.kept, **options)
        out["total_Size_Factor"], out["initial_total_cell_size"] = sf, cells
    return out


def calc_sz_factor(
    adata: ad.AnnData,
    layers: str | list[str] = "all",
    total_layers: list[str] | None = None,
    *,
    locfunc: Callable = np.nanmean,
    method: str = "median",
    scale_to: float | None = None,
) -> ad.AnnData:
    """Size factor of every cell in each count layer: cell total / median (or mean) total.

    One pass over the data. Cells with no counts get a total of 1.

    Parameters
    ----------
    adata
        AnnData with raw counts (X, or spliced/total standing for X when X is absent).
    layers
        ``'all'`` (X and every raw layer) or a list of names.
    total_layers
        Layers summed into total RNA (labelling data), e.g. ``['uu', 'ul', 'su', 'sl']``.
    locfunc
        Mean used by the geometric method.
    method
        ``'median'`` (dynamo's default), ``'mean'`` or ``'mean-geometric-mean-total'``.
    scale_to
        Divide totals by this number instead of their location.

    Returns
    -------
    anndata.AnnData
        ``adata``.

    Writes
    ------
    obs['Size_Factor'], obs['initial_cell_size'], obs['<layer>_Size_Factor'],
    obs['initial_<layer>_cell_size'] (and obs['total_Size_Factor'] with total_layers)
    """
    names = list(raw_layers(adata, layers))
    qc = qc_pass(adata, fit_cells(adata))
    columns = size_factor_columns(
        qc, names, total_layers, method=method, scale_to=scale_to, locfunc=locfunc
    )
    Pending(obs=columns).commit(adata, "size_factors")
    return adata


def factor_key_for(
    layer: str,
    total_szfactor: str | None,
    obs_keys,
    *,
    labelling: bool = False,
    size_factor_per_layer: bool = False,
    splicing_total_layers: bool = False,
    X_total_layers: bool = False,  # noqa: N803 - dynamo's name
) -> str:
    """Return the obs column whose size factors normalise ``layer``.

    Parameters
    ----------
    layer
        The layer (``'X'`` for X).
    total_szfactor
        obs column of the total-RNA size factors (``None``: ``'total_Size_Factor'`` for
        labelling data, no total factor otherwise).
    obs_keys
        The obs columns available (a total factor that is absent is not used).
    labelling
        Whether the data have labelling layers (``new``/``total`` or ``uu, ul, su, sl``).
    size_factor_per_layer
        dynamo's rule: each layer its own factor; ``total_szfactor`` only when named, and
        then not for X, spliced, unspliced unless ``X_total_layers`` /
        ``splicing_total_layers``.
    splicing_total_layers, X_total_layers
        Also use the total factor for spliced/unspliced, for X.

    Returns
    -------
    str
        ``total_szfactor`` (or ``'total_Size_Factor'``) or ``'<layer>_Size_Factor'``.
    """
    own = keys.size_factor_key(layer)
    shared = total_szfactor
    if labelling and not size_factor_per_layer:
        shared = total_szfactor or TOTAL_SIZE_FACTOR
        splicing_total_layers = True
    if shared is None or shared not in obs_keys:
        return own
    if layer == "X":
        return shared if X_total_layers else own
    if layer in ("spliced", "unspliced") and not splicing_total_layers:
        return own
    if labelling and not size_factor_per_layer and layer not in TOTAL_RNA_PARTS:
        return own
    return shared


def normalized_layers(
    adata: ad.AnnData,
    pending: Pending,
    names: list[str],
    *,
    total_szfactor: str | None = None,
    size_factor_per_layer: bool = False,
    splicing_total_layers: bool = False,
    X_total_layers: bool = False,  # noqa: N803 - dynamo's name
) -> dict[str, str]:
    """Add the lazy normalised layers ``X_<layer>`` (CSR blocks) and mark X as normalised.

    Each layer is divided by the obs column :func:`factor_key_for` names (the total-RNA size
    factor for the parts of total RNA in labelling data, else the layer's own).

    Returns
    -------
    dict
        The obs column used for each layer, by layer name (recorded in
        ``uns['pp']['size_factors']``).
    """
    obs_keys = set(adata.obs) | set(pending.obs)
    layers = raw_layers(adata, names)
    labelling = total_layers(adata) is not None
    used = {}
    for name, counts in layers.items():
        key = factor_key_for(
            name,
            total_szfactor,
            obs_keys,
            labelling=labelling,
            size_factor_per_layer=size_factor_per_layer,
            splicing_total_layers=splicing_total_layers,
            X_total_layers=X_total_layers,
        )
        used[name] = key
        sf = pending.column(adata, "obs", key)
        if name == "X":
            continue
        pending.layers[f"X_{name}"] = scaled(counts, sf)
    pp = pending.uns.setdefault("pp", dict(adata.uns.get("pp", {})))
    pp["X_normalized"] = "X" in layers
    pp["size_factors"] = dict(used)
    return used


def normalize(
    adata: ad.AnnData,
    layers: str | list[str] = "all",
    total_szfactor: str | None = None,
    *,
    size_factor_per_layer: bool = False,
    splicing_total_layers: bool = False,
    X_total_layers: bool = False,  # noqa: N803 - dynamo's name
    recalc_sz: bool = False,
    sz_method: str = "median",
    scale_to: float | None = None,
) -> ad.AnnData:
    """Divide each count layer by its cells' size factors (monocle's normalisation).

    Conventional data: each layer by its own size factor (``obs['<layer>_Size_Factor']``),
    as dynamo does. Labelling data (``new``/``total`` or ``uu, ul, su, sl`` present): every
    part of the total RNA (``new, total, uu, ul, su, sl``, ``spliced``, ``unspliced``) by
    the cell's total-RNA size factor (``obs['total_Size_Factor']``), so that new / total
    and the other ratios between layers survive normalisation. The new RNA's own library
    size grows with the labelling time; dividing ``new`` by it would remove the signal the
    labelling rates are fitted on (see the module docstring). ``X`` keeps
    ``obs['Size_Factor']`` unless ``X_total_layers``.

    Size factors missing from ``obs`` (or all, with ``recalc_sz``) are computed first (one
    extra pass). The normalised layers are written sparse, under dynamo's names.

    Parameters
    ----------
    adata
        AnnData with raw counts.
    layers
        ``'all'`` or the layers to normalise (``'X'`` included).
    total_szfactor
        obs column of the total-RNA size factors (default ``'total_Size_Factor'`` for
        labelling data; with ``size_factor_per_layer`` none unless named, as in dynamo).
    size_factor_per_layer
        Restore dynamo 1.5.3's per-layer factors for labelling data too (each layer by its
        own size factor): for parity checks with dynamo only, since it biases labelling
        rates (gamma many times too large on kin data).
    splicing_total_layers, X_total_layers
        Also use the total factor for spliced/unspliced (implied for labelling data unless
        ``size_factor_per_layer``), for X.
    recalc_sz
        Recompute the size factors.
    sz_method, scale_to
        How size factors are computed when needed (see :func:`calc_sz_factor`).

    Returns
    -------
    anndata.AnnData
        ``adata``.

    Writes
    ------
    layers['X_<layer>'] for each raw layer (spliced, unspliced, new, total, uu, ul, su, sl);
    obs size factors when computed; X divided by obs['Size_Factor'] and
    uns['pp']['X_normalized'] when X is among ``layers``; uns['pp']['size_factors'] (the obs
    column that divided each layer)
    """
    names = list(raw_layers(adata, layers))
    pending = Pending()
    totals = total_layers(adata)
    missing = [n for n in names if keys.size_factor_key(n) not in adata.obs]
    shared = total_szfactor or (
        None if totals is None or size_factor_per_layer else TOTAL_SIZE_FACTOR
    )
    if shared not in (None, TOTAL_SIZE_FACTOR) and shared not in adata.obs:
        raise MissingKeyError(f"total_szfactor {shared!r} is not an obs column")
    if recalc_sz or missing or (shared == TOTAL_SIZE_FACTOR and shared not in adata.obs):
        pending.obs.update(
            size_factor_columns(
                qc_pass(adata, fit_cells(adata)),
                names if recalc_sz or missing else [],
                totals,
                method=sz_method,
                scale_to=scale_to,
            )
        )
    normalized_layers(
        adata,
        pending,
        names,
        total_szfactor=total_szfactor,
        size_factor_per_layer=size_factor_per_layer,
        splicing_total_layers=splicing_total_layers,
        X_total_layers=X_total_layers,
    )
    pending.X = transformed_X(adata, pending)
    pending.commit(adata, "normalize")
    return adata


normalize_cell_expr_by_size_factors = normalize


def log1p(adata: ad.AnnData, layers: list[str] | None = None, *, copy: bool = False) -> ad.AnnData:
    """``log(1 + x)`` of X or of other layers, in place (or on a copy).

    Parameters
    ----------
    adata
        The AnnData.
    layers
        Layers to transform; default ``['X']``.
    copy
        Work on (and return) a copy.

    Returns
    -------
    anndata.AnnData
        ``adata``, or the copy when ``copy``.

    Writes
    ------
    X and uns['pp']['X_norm_method'] = 'log1p' for X (once: a logged X is not logged again);
    layers[<layer>] and uns['pp']['layers_norm_method'] = 'log1p' for other layers
    """
    adata = adata.copy() if copy else adata
    layers = ["X"] if layers is None else list(layers)
    missing = [n for n in layers if n != "X" and n not in adata.layers]
    if missing:
        raise MissingKeyError(
            f"layer(s) {missing} not in adata.layers (present: {sorted(adata.layers)})"
        )
    pending = Pending(uns={"pp": dict(adata.uns.get("pp", {}))})
    for name in layers:
        if name == "X":
            pending.uns["pp"]["X_norm_method"] = "log1p"
        else:
            pending.layers[name] = log1p_layer(adata.layers[name])
            pending.uns["pp"]["layers_norm_method"] = "log1p"
    pending.X = transformed_X(adata, pending)
    pending.commit(adata, "log1p")
    return adata
