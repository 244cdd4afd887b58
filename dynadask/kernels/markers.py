"""Kernels of the marker-gene tests: per-group counts, gathered values, per-gene comparisons.

A row block gives, per cell group, its number of cells and, per gene, the sum and the number
of non-zero values (:func:`group_counts`), and for chosen genes the non-zero values with their
gene and group (:func:`nonzero_values`); both add up over blocks (sums, concatenation). Each
group's values of a gene are then its zeros and its gathered non-zero values, which is all
the Mann-Whitney test, the means and the expression fractions need; :func:`compare_gene` makes
dynamo's per-gene comparison of one test group with each control group.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.stats import mannwhitneyu

COLUMNS = (
    "gene",
    "test_group",
    "versus_group",
    "specificity",
    "exp_frac",
    "diff_ratio_pos",
    "rbc",
    "log2_fc",
    "pval",
    "qval",
)
"""The columns of dynamo's marker table, in its order."""


def _csr(block) -> sparse.csr_matrix:
    if sparse.issparse(block):
        return sparse.csr_matrix(block)
    return sparse.csr_matrix(np.asarray(block))


def group_counts(block, codes: np.ndarray, *, n_groups: int) -> dict[str, np.ndarray]:
    """Per group: ``cells`` (count), ``nnz`` (non-zero values per gene), ``sum`` per gene."""
    x = _csr(block)
    codes = np.asarray(codes).ravel().astype(np.int64)
    onehot = sparse.csr_matrix(
        (np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_groups, codes.size)
    )
    nz = x.copy()
    nz.data = (nz.data != 0).astype(np.float64)
    return {
        "cells": np.bincount(codes, minlength=n_groups).astype(np.float64),
        "nnz": np.asarray((onehot @ nz).todense()),
        "sum": np.asarray((onehot @ x.astype(np.float64)).todense()),
    }


def nonzero_values(block, codes: np.ndarray, *, cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(gene position in cols, group code, value)`` of each non-zero value of ``cols``."""
    x = _csr(block)[:, cols].tocoo()
    keep = x.data != 0
    codes = np.asarray(codes).ravel().astype(np.int64)
    return (
        x.col[keep].astype(np.int32),
        codes[x.row[keep]].astype(np.int32),
        x.data[keep].astype(np.float64),
    )


def concat(*parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Concatenate :func:`nonzero_values` results."""
    return tuple(np.concatenate(items) for items in zip(*parts, strict=True))


def split_values(
    gathered: tuple[np.ndarray, ...], n_genes: int, n_groups: int
) -> list[list[np.ndarray]]:
    """Group gathered non-zero values as ``[gene][group] -> values``."""
    gene, group, value = gathered
    order = np.lexsort((group, gene))
    key = gene[order].astype(np.int64) * n_groups + group[order]
    bounds = np.searchsorted(key, np.arange(n_genes * n_groups + 1))
    value = value[order]
    return [
        [value[bounds[g * n_groups + k] : bounds[g * n_groups + k + 1]] for k in range(n_groups)]
        for g in range(n_genes)
    ]


def group_values(nonzero: np.ndarray, n_cells: int) -> np.ndarray:
    """All values of a group: its zeros, then its non-zero values."""
    return np.concatenate([np.zeros(n_cells - nonzero.size), nonzero])


def _entropy(p: np.ndarray) -> float:
    if np.min(p) < 0 or np.sum(p) <= 0:
        return np.inf
    q = p[p > 0] / np.sum(p)
    return float(-np.sum(np.log(q) * q))


def specificity(perc: np.ndarray, perfect: np.ndarray) -> float:
    """1 - Jensen-Shannon distance between the normalised ``perc`` and ``perfect``."""
    total = np.sum(perc)
    p = perc / total if total > 0 else np.zeros_like(perc)
    div = _entropy((p + perfect) / 2) - (_entropy(p) + _entropy(perfect)) / 2
    div = 1.0 if np.isinf(div) else max(div, 0.0)
    return 1.0 - float(np.sqrt(div))


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (the ``fdr_bh`` rule)."""
    p = np.asarray(p, dtype=np.float64)
    n = p.size
    order = np.argsort(p)
    scaled = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def compare_gene(
    test: np.ndarray,
    controls: list[np.ndarray],
    n_cells: int,
    *,
    exp_frac_thresh: float,
    log2_fc_thresh: float | None,
    subset: bool,
    by_abs: bool,
) -> list[tuple]:
    """Rows of dynamo's table for one gene: the test group's values against each control group's.

    Returns ``(versus index, exp_frac, rbc, log2_fc, pval, specificity, diff_ratio_pos)``
    per control group that passes the fold-change filter; nothing when the test group's
    expressed fraction is below ``exp_frac_thresh``. With ``subset`` each control group is
    cut to its ``min(n_test, n_control)`` largest values (by absolute value when ``by_abs``).
    A failed Mann-Whitney test keeps the previous control group's ``rbc`` and p-value.
    """
    n_test = test.size
    ef = np.count_nonzero(test) / n_test
    if ef < exp_frac_thresh:
        return []
    perc = np.array([np.count_nonzero(test)] + [np.count_nonzero(c) for c in controls]) / n_cells
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean_test = np.log2(test.mean())
    rbc, pval, rows = 0.0, 1.0, []
    for i, control in enumerate(controls):
        if subset:
            keep = min(n_test, control.size)
            order = np.argsort(np.abs(control)) if by_abs else np.argsort(control)
            control = control[order][control.size - keep :]
        n1n2 = n_test * control.size
        if log2_fc_thresh is not None:
            mean_c = control.mean()
            log_fc = np.inf if mean_c == 0 else log_mean_test - np.log2(mean_c)
            if abs(log_fc) < log2_fc_thresh:
                continue
        else:
            log_fc = test.mean() - control.mean()
        try:
            res = mannwhitneyu(test, control)
        except ValueError:
            pass
        else:
            pval = float(res.pvalue)
            rbc = 1 - 2 * float(res.statistic) / n1n2
        perfect = np.zeros(len(controls) + 1)
        perfect[i + 1] = 1.0
        ratio = np.count_nonzero(test > 0) / n_test - np.count_nonzero(control > 0) / control.size
        rows.append((i, ef, rbc, float(log_fc), pval, specificity(perc, perfect), ratio))
    return rows
