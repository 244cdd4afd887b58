"""Gene-regulatory networks as tables of Hill terms, and their synthesis rates (one block).

A network is four arrays, one row per term: the gene the term feeds (``gene``), its kind
(``kind``), up to three input genes (``inputs``, ``-1`` pads) and three numbers
``(a, K, n)`` (``par``). A gene's transcription rate is the sum of its terms, each read
from the spliced (mature) levels ``s`` of its inputs:

* ``CONST``:    ``a``
* ``ACT``:      ``a x0^n / (K^n + x0^n + x1^n + x2^n)`` (activation by the first input,
  competing with the others; one input gives the plain Hill activation)
* ``INH``:      ``a K^n / (K^n + x0^n + x1^n + x2^n)`` (repression by all inputs)
* ``SUM_ACT``:  ``a (x0^n + x1^n + x2^n) / (K^n + x0^n + x1^n + x2^n)``
* ``PROD_ACT``: ``a (x0^n x1^n x2^n) / (K^n + x0^n x1^n x2^n)`` (joint activation)

Each gene also has a splicing rate ``beta`` and a degradation rate ``gamma``; the reduced
vector field in spliced space is ``f(s) = alpha(s) - gamma s``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

CONST, ACT, INH, SUM_ACT, PROD_ACT = 0, 1, 2, 3, 4
KINDS = {"const": CONST, "act": ACT, "inh": INH, "sum_act": SUM_ACT, "prod_act": PROD_ACT}


@njit(cache=True)
def _power(x, n):
    # x ** n by repeated squaring for whole exponents (the usual Hill coefficients)
    k = int(n)
    if k != n or k < 0 or k > 64:
        return x**n
    out = 1.0
    while k:
        if k & 1:
            out *= x
        x *= x
        k >>= 1
    return out


@njit(cache=True)
def _term(s, kind, inputs, par):
    a, k, n = par[0], par[1], par[2]
    if kind == CONST:
        return a
    acc = 1.0 if kind == PROD_ACT else 0.0
    first = 0.0
    for j in range(inputs.shape[0]):
        i = inputs[j]
        if i < 0:
            break
        v = _power(float(s[i]), n)
        if j == 0:
            first = v
        acc = acc * v if kind == PROD_ACT else acc + v
    kn = _power(k, n)
    den = kn + acc
    if den <= 0.0:
        return 0.0
    if kind == ACT:
        return a * first / den
    if kind == INH:
        return a * kn / den
    return a * acc / den


@njit(cache=True)
def fill_alpha(s, gene, kind, inputs, par, out):
    """Write the transcription rate of every gene at spliced levels ``s`` into ``out``."""
    out[:] = 0.0
    for t in range(gene.shape[0]):
        out[gene[t]] += _term(s, kind[t], inputs[t], par[t])


@njit(cache=True)
def alpha_rows(s, gene, kind, inputs, par):
    """Return the transcription rates (cells x genes) at spliced levels ``s`` (cells x genes)."""
    out = np.zeros(s.shape, dtype=np.float64)
    for c in range(s.shape[0]):
        fill_alpha(s[c], gene, kind, inputs, par, out[c])
    return out


def is_coupled(inputs: np.ndarray, kind: np.ndarray) -> bool:
    """Return whether any term reads another gene (rates then change with the state)."""
    return bool(np.any((kind != CONST) & (inputs[:, 0] >= 0)))


def reduced_field(s: np.ndarray, net: dict) -> np.ndarray:
    """Return ``alpha(s) - gamma s`` (cells x genes), the vector field in spliced space."""
    s = np.atleast_2d(np.asarray(s, dtype=np.float64))
    alpha = alpha_rows(s, net["gene"], net["kind"], net["inputs"], net["par"])
    return alpha - net["gamma"] * s


def full_jacobian(s: np.ndarray, net: dict, eps: float = 1e-6) -> np.ndarray:
    """Return the Jacobian of the (u, s) system at the fixed point with spliced levels ``s``.

    The system is ``du = alpha(s) - beta u``, ``ds = beta u - gamma s``; ``d alpha / d s``
    is taken by central differences.
    """
    s = np.asarray(s, dtype=np.float64)
    g = s.size
    dalpha = np.empty((g, g))
    for j in range(g):
        step = eps * max(1.0, abs(s[j]))
        hi, lo = s.copy(), s.copy()
        hi[j] += step
        lo[j] = max(lo[j] - step, 0.0)
        diff = reduced_field(hi, net)[0] - reduced_field(lo, net)[0]
        dalpha[:, j] = (diff + net["gamma"] * (hi - lo)) / (hi[j] - lo[j])
    beta, gamma = np.diag(net["beta"]), np.diag(net["gamma"])
    return np.block([[-beta, dalpha], [beta, -gamma]])


def nearest_point(*blocks, points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Return, per row, the index of the nearest of ``points`` to the sum of ``blocks``.

    Distances are measured after dividing every gene by ``scale``; blocks may be sparse.
    """
    s = sum(
        np.asarray(b.toarray() if hasattr(b, "toarray") else b, dtype=np.float64) for b in blocks
    )
    d = (((s[:, None, :] - points[None]) / scale) ** 2).sum(axis=2)
    return np.argmin(d, axis=1).astype(np.int64)
