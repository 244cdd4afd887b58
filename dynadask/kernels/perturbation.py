"""In-silico perturbation of one block of cells through the field's Jacobian (numpy only).

Cells are PCA scores ``x`` (loadings ``Q``, genes x d, gene means ``mu``). Setting the
perturbed genes ``g`` to values ``e`` in the reconstructed expression ``x Q^T + mu`` and
projecting back gives ``x' = x Q^T Q + (e - x Q_g^T - mu_g) Q_g`` (only the perturbed genes'
rows of ``Q`` are touched; no cells x genes matrix is formed). The response is a
Jacobian-vector product of the learned field (:meth:`dynadask.kernels.lap.GaussianField.jvp`).
"""

from __future__ import annotations

import numpy as np

from .._core.errors import InputError
from .lap import GaussianField

METHODS = ("j_delta_x", "j_x_prime", "j_jv", "f_x_prime", "f_x_prime_minus_f_x_0")


def perturbed_scores(
    x: np.ndarray, mask: np.ndarray, Q: np.ndarray, mu_g: np.ndarray, Q_g: np.ndarray, e: np.ndarray
) -> np.ndarray:
    """``x'``: the scores of the cells once the genes are set to ``e`` in the masked cells.

    As dynamo's round trip through gene space: every cell gets ``x Q^T Q`` (``x`` itself for
    orthonormal loadings), the masked cells also the change of the perturbed genes.
    """
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(mask, dtype=bool).ravel()
    out = x @ (Q.T @ Q)
    out[m] += (e[None, :] - (x[m] @ Q_g.T + mu_g[None, :])) @ Q_g
    return out


def response(
    x: np.ndarray,
    mask: np.ndarray,
    field: GaussianField,
    Q: np.ndarray,
    mu_g: np.ndarray,
    Q_g: np.ndarray,
    e: np.ndarray,
    method: str = "j_delta_x",
    delta_t: float = 1.0,
    J_jv_delta_t: float = 1.0,
) -> np.ndarray:
    """The perturbation response ``delta Y`` of a block of cells (``n x d``).

    ``j_delta_x``: ``J(x) (x' - x) delta_t``; ``j_x_prime``: ``J(x) x' delta_t``; ``j_jv``:
    ``J(x) (J(x) (x' - x) J_jv_delta_t) delta_t``; ``f_x_prime``: ``f(x')``;
    ``f_x_prime_minus_f_x_0``: ``f(x') - f(x)``.
    """
    x = np.asarray(x, dtype=np.float64)
    xp = perturbed_scores(x, mask, Q, mu_g, Q_g, e)
    if method == "j_delta_x":
        return field.jvp(x, (xp - x) * delta_t)
    if method == "j_x_prime":
        return field.jvp(x, xp * delta_t)
    if method == "j_jv":
        return field.jvp(x, field.jvp(x, (xp - x) * J_jv_delta_t) * delta_t)
    if method == "f_x_prime":
        return field(xp)
    if method == "f_x_prime_minus_f_x_0":
        return field(xp) - field(x)
    raise InputError(f"unknown perturbation method {method!r}: use one of {METHODS}")


def gene_moments(x: np.ndarray, Q_g: np.ndarray, mu_g: np.ndarray) -> np.ndarray:
    """Count, sums and sums of squares of the reconstructed perturbed genes (``3 x k``)."""
    r = np.asarray(x, dtype=np.float64) @ Q_g.T + mu_g[None, :]
    return np.stack([np.full(r.shape[1], r.shape[0], dtype=np.float64), r.sum(0), (r * r).sum(0)])


def to_genes(dy: np.ndarray, Q: np.ndarray, genes: np.ndarray, n_genes: int, zero: np.ndarray):
    """``dy Q^T`` on columns ``genes`` of ``n_genes`` (0 elsewhere and on ``zero``), float32."""
    out = np.zeros((dy.shape[0], n_genes), dtype=np.float32)
    out[:, genes] = np.asarray(dy, dtype=np.float64) @ Q.T
    out[:, zero] = 0.0
    return out
