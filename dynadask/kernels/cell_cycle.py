"""Cell-cycle phase scores: per-block sums for marker coherence and phase totals, per-cell math.

The block functions take one row block (numpy or scipy sparse, cells x the union of the
marker genes) and return float64 sums; the rest works on small per-cell arrays (cells x
phases). No Dask, no AnnData.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

PHASES = ("G1-S", "S", "G2-M", "M", "M-G1")


def _dense(block, logs: int, genes: np.ndarray | None = None) -> np.ndarray:
    if genes is not None:
        block = block[:, genes]
    x = block.toarray() if sparse.issparse(block) else np.asarray(block)
    x = x.astype(np.float64, copy=True)
    for _ in range(logs):
        np.log1p(x, out=x)
    return x


def coherence_sums(
    block, members: list[np.ndarray], *, genes: np.ndarray | None = None, logs: int = 0
) -> dict:
    """Sums for the correlation of each marker gene with its phase's mean profile.

    Parameters
    ----------
    block
        Expression, cells x genes.
    members
        For each phase, the positions of its genes among ``genes``.
    genes
        The columns of ``block`` used (the union of the marker genes; all when ``None``).
    logs
        How many times ``log1p`` is applied to the values first.

    Returns
    -------
    dict
        ``n``; per phase ``p`` (index): ``x<p>``, ``xx<p>``, ``xa<p>`` (per gene of the phase:
        sums of x, x^2 and x times the phase mean) and ``a<p>`` (sum and sum of squares of
        the phase mean over cells).
    """
    x = _dense(block, logs, genes)
    out = {"n": np.array([x.shape[0]], dtype=np.float64)}
    for p, cols in enumerate(members):
        sub = x[:, cols]
        avg = sub.mean(axis=1) if cols.size else np.zeros(x.shape[0])
        out[f"x{p}"] = sub.sum(axis=0)
        out[f"xx{p}"] = (sub * sub).sum(axis=0)
        out[f"xa{p}"] = sub.T @ avg
        out[f"a{p}"] = np.array([avg.sum(), (avg * avg).sum()])
    return out


def coherence(sums: dict, n_phases: int) -> list[np.ndarray]:
    """Pearson correlation of each marker gene with its phase's mean profile (NaN if flat)."""
    n = float(sums["n"][0])
    out = []
    for p in range(n_phases):
        sx, sxx, sxa = sums[f"x{p}"], sums[f"xx{p}"], sums[f"xa{p}"]
        sa, saa = sums[f"a{p}"]
        cov = sxa - sx * sa / n
        var_x = sxx - sx * sx / n
        var_a = saa - sa * sa / n
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(cov / np.sqrt(var_x * var_a))
    return out


def phase_totals(
    block, members: list[np.ndarray], *, genes: np.ndarray | None = None, logs: int = 0
) -> np.ndarray:
    """Each cell's summed expression over each phase's genes, ``(cells, n_phases)``.

    ``members`` index into ``genes`` (the columns of ``block`` used; all when ``None``).
    """
    x = _dense(block, logs, genes)
    return np.stack([x[:, cols].sum(axis=1) for cols in members], axis=1)


def phase_scores(totals: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
    """Each cell's correlation, across the phases, with each phase's indicator.

    The phase totals are z-scored over the cells ``kept`` (all when ``None``; population
    s.d.) first; the correlation of a
    cell's profile with the indicator of phase ``p`` is its centred value at ``p`` over the
    norm of its centred profile, times ``1 / sqrt(1 - 1 / n_phases)``.
    """
    t = np.asarray(totals, dtype=np.float64)
    ref = t if kept is None else t[np.asarray(kept, dtype=bool)]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (t - ref.mean(axis=0)) / ref.std(axis=0)
        centred = z - z.mean(axis=1, keepdims=True)
        k = t.shape[1]
        norm = np.sqrt((centred**2).sum(axis=1, keepdims=True)) * np.sqrt(1 - 1 / k)
        return centred / norm


def phase_progress(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase (index of the best score), progress and order of each cell within its phase.

    Progress is the score of the previous phase minus that of the next one (cyclically);
    the order is a cell's rank by decreasing progress within its phase over (cells in the
    phase - 1), NaN for a phase of one cell.
    """
    s = np.asarray(scores, dtype=np.float64)
    k = s.shape[1]
    phase = np.argmax(np.where(np.isnan(s), -np.inf, s), axis=1)
    rows = np.arange(s.shape[0])
    progress = s[rows, (phase - 1) % k] - s[rows, (phase + 1) % k]
    order = np.full(s.shape[0], np.nan)
    for p in range(k):
        idx = np.flatnonzero(phase == p)
        if idx.size > 1:
            ranked = idx[np.argsort(-progress[idx], kind="stable")]
            order[ranked] = np.arange(idx.size) / (idx.size - 1)
        elif idx.size == 1:
            order[idx] = np.nan
    return phase, progress, order
