"""``dyn.tl.latent_time``: one latent time per cell shared by the dynamical model's genes."""

from __future__ import annotations

import anndata as ad
import numpy as np

from .._core import keys
from .._core.errors import InputError, MissingKeyError
from ..est.csc.dynamical_em import DynamicalEM
from ..io import commit

# var columns of dyn.tl.dynamics(model='dynamical') that place a cell on a gene's curve
CURVE = ("alpha", "fit_gamma_curve", "t_switch", "fit_var_u", "fit_var_s", "fit_t_min", "fit_t_max")


def latent_time(
    adata: ad.AnnData, *, min_likelihood: float | None = None, copy: bool = False
) -> ad.AnnData | None:
    """A latent time per cell shared by the genes of the dynamical model.

    Every gene fitted by ``dyn.tl.dynamics(model='dynamical')`` (``est_method='em'``) gives
    each cell a time: its projection on the gene's fitted induction-then-repression curve in
    the metric of the gene's noise. Each gene's times are scaled so that the earliest and
    latest fit cells are at 0 and 1, and a cell's latent time is the median of its scaled
    times over the genes that follow a trajectory (``var['fit_steady'] == 0``; genes at
    steady state carry no time). Computed row block by row block.

    Parameters
    ----------
    adata
        AnnData (in memory or opened from a store) after
        ``dyn.tl.dynamics(adata, model='dynamical')``.
    min_likelihood
        Use only genes with ``var['fit_likelihood']`` at least this (all fitted genes if
        None).
    copy
        Work on (and return) a copy.

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy``.

    Writes
    ------
    obs['latent_time']
        The shared latent time (about 0 to 1; NaN for a cell no gene places).

    Raises
    ------
    ValueError
        If the dynamical model's parameters are missing or no gene follows a trajectory.
    """
    adata = adata.copy() if copy else adata
    missing = [c for c in (*CURVE, "fit_steady") if c not in adata.var]
    if missing:
        raise MissingKeyError(
            f"var lacks {missing}: run dyn.tl.dynamics(adata, model='dynamical') "
            "(est_method='em') first"
        )
    ok = np.asarray(adata.var["fit_steady"] == 0) & np.all(
        np.isfinite(adata.var[list(CURVE)].to_numpy(np.float64)), axis=1
    )
    if min_likelihood is not None:
        ok &= np.asarray(adata.var["fit_likelihood"] >= min_likelihood)
    if not ok.any():
        raise InputError(
            "no gene follows a trajectory (every fitted gene is at steady state or below "
            "min_likelihood): latent time needs genes in transient kinetics"
        )
    smoothed = adata.uns.get("dynamics", {}).get("use_smoothed", True)
    names = (keys.M_U, keys.M_S) if smoothed else ("X_unspliced", "X_spliced")
    for name in names:
        if name not in adata.layers:
            raise MissingKeyError(f"layer {name!r} is missing: run dyn.tl.dynamics again")
    genes = np.flatnonzero(ok)
    est = DynamicalEM(
        params={
            k: adata.var[c].to_numpy(np.float64)[None]
            for k, c in zip(
                ("alpha", "fit_gamma_curve", "t_switch", "fit_var_u", "fit_var_s")
                + ("fit_t_min", "fit_t_max"),
                CURVE,
                strict=True,
            )
        }
    )
    time = est.latent_time(adata.layers[names[0]], adata.layers[names[1]], genes)
    commit(adata, "latent_time", obs={"latent_time": time})
    return adata if copy else None
