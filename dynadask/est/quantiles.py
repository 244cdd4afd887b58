"""Exact per-gene percentiles of the extremeness score, out of core.

Sorting each gene's values over a million cells in one place is what an out-of-core method
cannot do. Three passes over the row blocks give the same numbers as ``numpy.percentile``
(linear interpolation) without it:

1. per stratum and gene, the minimum and maximum of ``s`` and ``u`` (these also scale the
   score ``s / max s + u / max u``, as dynamo's extreme-cell selection does);
2. a histogram of the score in ``n_bins`` equal bins between its bounds;
3. the distinct score values inside the bins that hold the two order statistics each
   percentile interpolates between (few per gene: about ``n_cells / n_bins`` plus ties,
   which collapse to one value with a count).

The order statistics, and so the percentiles, are then exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._core.compute import compute
from ..graph import kinetics as gk
from ..kernels import estimation as ke

N_BINS = 1024


def extreme_thresholds(
    s: Any,
    u: Any,
    codes: np.ndarray,
    n_strata: int,
    percentiles: Sequence[float],
    n_bins: int = N_BINS,
) -> dict[str, Any]:
    """Per-stratum, per-gene percentiles of the extremeness score of ``(s, u)``.

    Parameters
    ----------
    s, u
        Cells x genes (numpy, scipy sparse or Dask).
    codes
        Stratum of each cell (-1: left out).
    n_strata
        Number of strata.
    percentiles
        Percentiles in [0, 100].
    n_bins
        Histogram bins of the second pass.

    Returns
    -------
    dict
        ``grid`` (score scales and bins), ``values`` (one ``n_strata x n_genes`` array per
        percentile; NaN for empty strata) and ``n`` (cells per stratum).
    """
    plan = score_windows(s, u, codes, n_strata, percentiles, n_bins)
    (found,) = compute(
        gk.collect_in_bins(s, u, codes, plan["grid"], n_bins, plan["windows"]),
        desc="dynamics: quantiles",
    )
    return {"grid": plan["grid"], "values": thresholds(plan, found), "n": plan["n"]}


def score_windows(
    s: Any,
    u: Any,
    codes: np.ndarray,
    n_strata: int,
    percentiles: Sequence[float],
    n_bins: int = N_BINS,
) -> dict[str, Any]:
    """Passes 1 and 2 of :func:`extreme_thresholds`: the score grid and each percentile's bins.

    Returns
    -------
    dict
        ``grid``, ``n`` (cells per stratum and gene), ``windows`` (one ``(first_bin,
        last_bin)`` pair per percentile), ``plans`` (what :func:`thresholds` needs) and
        ``in_window`` (cells inside the windows per stratum and gene, less those at the
        score's lowest value, which are kept as one count).
    """
    (ext,) = compute(gk.extent(s, u, codes, n_strata), desc="dynamics: score range")
    grid = ke.score_grid(ext, n_bins)
    (counts,) = compute(gk.score_histogram(s, u, codes, grid, n_bins), desc="dynamics: histogram")
    hist, at_lo = counts[..., :-1], counts[..., -1]
    n = hist.sum(axis=-1)
    plans, windows = [], []
    cum = np.cumsum(hist, axis=-1)
    in_window = np.zeros(n.shape, dtype=np.int64)
    for q in percentiles:
        r1, r2, frac = ke.percentile_ranks(n, q)
        b1, before = ke.bin_of_rank(hist, r1)
        b2, _ = ke.bin_of_rank(hist, r2)
        plans.append((r1, r2, frac, before))
        windows.append((b1, b2))
        inside = np.take_along_axis(cum, b2[..., None], -1)[..., 0] - before
        # the scores at the lowest value are kept as one count (see window_sums)
        in_window += np.where(b1 == 0, inside - at_lo, inside).astype(np.int64)
    return {"grid": grid, "n": n, "windows": windows, "plans": plans, "in_window": in_window}


PENDING_BUDGET = 2**22
"""Window cells (over all keys) a one-pass sum may keep pending until the thresholds are known.

About 0.5 GB at 14 float64 values each; see :func:`too_crowded`."""

KEY_BUDGET = 2**20
"""Window cells one key (stratum, gene) may keep pending."""


def too_crowded(in_window: np.ndarray) -> np.ndarray:
    """Keys whose window cells are too many to keep pending: they take the separate passes.

    ``in_window`` counts each key's cells in its percentile windows (from the histogram,
    so before any sum is taken). Keys above :data:`KEY_BUDGET` are flagged, then the
    most crowded others until the rest hold at most :data:`PENDING_BUDGET` cells.
    """
    counts = np.asarray(in_window, dtype=np.int64)
    flat = counts.ravel()
    skip = flat > KEY_BUDGET
    order = np.argsort(np.where(skip, -1, flat), kind="stable")[::-1]
    kept = np.cumsum(np.where(skip, 0, flat)[order][::-1])[::-1]
    over = kept > PENDING_BUDGET
    skip[order[over]] = True
    return skip.reshape(counts.shape)


def thresholds(plan: dict[str, Any], found: Sequence[tuple]) -> list[np.ndarray]:
    """The percentiles from the values collected in each window (``(keys, values, counts)``)."""
    values = []
    for (r1, r2, frac, before), got in zip(plan["plans"], found, strict=True):
        lo = ke.order_statistic(got, before, r1)
        hi = ke.order_statistic(got, before, r2)
        values.append(np.where(plan["n"] > 0, ke.lerp(lo, hi, frac), np.nan))
    return values
