"""Labelling experiments on cells at steady state, with a library size that varies by cell.

Real cells differ in how much of their RNA is captured and sequenced. Here each cell's mean
counts (closed form, :mod:`dynadask.kernels.labelling_means`) are multiplied by its own
library size, log-normal with median 1, before the Poisson draw, so that preprocessing has
to undo the library size before the kinetic rates can be recovered in absolute units.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .._core.errors import InputError
from ..kernels.labelling_means import labelled_means

DESIGNS = ("one-shot", "kin", "deg", "mix_std_stm")
DEFAULT_TIMES = {
    "one-shot": (2.0,),
    "kin": (1.0, 2.0, 4.0, 8.0),
    "deg": (0.0, 1.0, 2.0, 4.0, 8.0),
    "mix_std_stm": (0.0, 1.0, 2.0, 4.0, 8.0),
}


def simulate_steady_labelling(
    experiment_type: str = "kin",
    n_cells: int = 2000,
    *,
    n_genes: int = 20,
    times: Sequence[float] | None = None,
    splicing: bool = False,
    size_sd: float = 0.5,
    stimulated: float = 0.2,
    seed: int = 0,
) -> ad.AnnData:
    """Simulate a labelling experiment on steady-state cells with varying library size.

    Genes are independent with ``alpha`` uniform in 5..40, ``beta`` in 0.5..2 and
    ``gamma`` in 0.1..0.8 per hour. Cells are spread evenly over ``times``; each cell's
    expected counts are scaled by its library size (``exp(N(0, size_sd))``) and drawn
    from a Poisson.

    Parameters
    ----------
    experiment_type
        ``'one-shot'`` (labelled for one time), ``'kin'`` (labelled for each time),
        ``'deg'`` (fully labelled, then chased for each time) or ``'mix_std_stm'``
        (labelled for the longest time, the last ``time`` of it stimulated: the genes
        that respond transcribe at ``alpha_stm``, uniform in 4..80, the others go on at
        ``alpha``).
    n_cells
        Number of cells.
    n_genes
        Number of genes.
    times
        Label, chase or stimulation durations (hours); defaults per design: one-shot 2;
        kin 1, 2, 4, 8; deg and mix_std_stm 0, 1, 2, 4, 8.
    splicing
        Make ``uu, ul, su, sl`` (labelled / unlabelled, unspliced / spliced) instead of
        ``new`` and ``total`` (one species decaying at ``gamma``).
    size_sd
        Standard deviation of the log library size (0: every cell the same).
    stimulated
        Fraction of the genes that respond to the stimulation (``mix_std_stm``). When
        every gene responds, the total RNA of stimulated cells grows with the stimulation
        time and any size-factor normalisation takes part of that growth for library size;
        in real data most genes do not respond.
    seed
        Random seed.

    Returns
    -------
    anndata.AnnData
        The simulated cells.

    Writes
    ------
    X
        The total counts (``total``, or the sum of the four splicing/labelling layers).
    layers
        ``new``, ``total`` or ``uu``, ``ul``, ``su``, ``sl`` (float32 CSR counts).
    obs
        ``time`` (dynamo's ``tkey``), ``library_size`` (the true factor).
    var
        ``true_alpha``, ``true_beta``, ``true_gamma`` (and ``true_alpha_stm``: ``mix_std_stm``).
    """
    if experiment_type not in DESIGNS:
        raise InputError(f"unknown experiment_type {experiment_type!r}: use one of {DESIGNS}")
    if int(n_cells) < 1 or int(n_genes) < 1 or size_sd < 0:
        raise InputError("n_cells and n_genes must be positive and size_sd non-negative")
    values = np.asarray(DEFAULT_TIMES[experiment_type] if times is None else times, dtype=float)
    if values.size == 0 or np.any(values < 0) or not np.all(np.isfinite(values)):
        raise InputError(f"times must be non-negative numbers, got {times!r}")
    rng = np.random.default_rng([seed, 11])
    rates = {
        "alpha": rng.uniform(5, 40, n_genes),
        "beta": rng.uniform(0.5, 2, n_genes),
        "gamma": rng.uniform(0.1, 0.8, n_genes),
    }
    if experiment_type == "mix_std_stm":
        responds = rng.random(n_genes) < stimulated
        rates["alpha_stm"] = np.where(responds, rng.uniform(4, 80, n_genes), rates["alpha"])
    t = values[rng.permutation(np.arange(n_cells) % values.size)]
    size = np.exp(rng.normal(0.0, size_sd, n_cells))
    size /= np.exp(np.log(size).mean())
    means = labelled_means(experiment_type, rates, t, splicing=splicing)
    layers = {
        k: sparse.csr_matrix(rng.poisson(np.maximum(m, 0) * size[:, None]).astype(np.float32))
        for k, m in means.items()
    }
    if not splicing:  # labelled and unlabelled molecules are drawn apart; total is their sum
        layers["total"] = layers.pop("old") + layers["new"]
    x = layers["total"] if "total" in layers else sum(layers.values())
    obs = pd.DataFrame(
        {"time": t, "library_size": size}, index=pd.Index([f"cell_{i}" for i in range(n_cells)])
    )
    var = pd.DataFrame(
        {f"true_{k}": v for k, v in rates.items()},
        index=pd.Index([f"gene_{j}" for j in range(n_genes)]),
    )
    return ad.AnnData(X=sparse.csr_matrix(x), obs=obs, var=var, layers=layers)
